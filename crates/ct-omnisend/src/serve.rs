//! `ct-omnisend serve`: wiring of [`connector::serve`] from settings and environment.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use connector::app;
use connector::config::Settings;
use connector::ingest::oidc::{OidcSettings, OidcVerifier};
use connector::serve::{Service, run, shutdown_on_signals};
use connector::store::StateStore;
use secrecy::SecretString;

/// Where to listen: `--listen` > `PORT` (all interfaces, as containers expect) >
/// `server.listen` > `127.0.0.1:8080`.
pub fn listen_address(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    settings: &Settings,
) -> anyhow::Result<std::net::SocketAddr> {
    let chosen = match (flag, env("PORT").filter(|p| !p.is_empty())) {
        (Some(f), _) => f.to_owned(),
        (None, Some(port)) => format!("0.0.0.0:{port}"),
        (None, None) => settings.server.listen.clone(),
    };
    chosen.parse().with_context(|| {
        format!("listen address {chosen:?} is not an address such as 127.0.0.1:8080")
    })
}

fn secret(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<SecretString> {
    env(name).filter(|v| !v.is_empty()).map(SecretString::from)
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn serve(
    settings: Settings,
    listen: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<ExitCode> {
    let addr = listen_address(listen, env, &settings)?;
    let store = StateStore::connect(&settings.state_url)
        .await
        .with_context(|| {
            format!(
                "opening the state store {}",
                connector::config::redact_password(&settings.state_url)
            )
        })?;
    let ct = app::commercetools_client(&settings)?;
    let clients = app::brand_clients(&settings, env)?;
    let webhook_token = secret(env, connector::config::env::CT_OMNISEND_WEBHOOK_TOKEN);
    let oidc = settings.server.oidc.as_ref().map(|o| {
        OidcVerifier::new(
            OidcSettings {
                jwks_url: o.jwks_url.clone(),
                issuers: o.issuers.clone(),
                service_account_email: o.service_account_email.clone(),
                ..OidcSettings::google(o.audience.clone())
            },
            reqwest_client(),
        )
    });
    if let Some(o) = &settings.server.oidc
        && o.service_account_email.is_none()
        && webhook_token.is_none()
    {
        anyhow::bail!(
            "[server.oidc] without service_account_email accepts a token from any Google account \
             for the audience: set server.oidc.service_account_email or CT_OMNISEND_WEBHOOK_TOKEN"
        );
    }
    if webhook_token.is_none() && oidc.is_none() {
        tracing::warn!(
            "neither CT_OMNISEND_WEBHOOK_TOKEN nor [server.oidc] is set: every webhook is refused"
        );
    }
    let recovery_secret = secret(env, &settings.events.recovery_secret_env);
    if let Some(s) = &recovery_secret {
        use secrecy::ExposeSecret;
        connector::recovery::check_secret(s.expose_secret().as_bytes()).with_context(|| {
            format!(
                "{} (the cart recovery signing secret)",
                settings.events.recovery_secret_env
            )
        })?;
    }
    if recovery_secret.is_none()
        && settings
            .stores
            .iter()
            .any(|s| s.cart_recovery_url.is_some())
    {
        tracing::warn!(
            variable = %settings.events.recovery_secret_env,
            "the cart recovery secret is not set: cart events go out without abandonedCheckoutURL"
        );
    }
    let admin = &settings.server.admin;
    let admin_password = secret(env, &admin.password_env);
    if admin_password.is_none() {
        tracing::info!(
            variable = %admin.password_env,
            "the admin page is disabled (its password variable is not set): /admin answers 404"
        );
    }
    let service = Service {
        settings: Arc::new(settings),
        store,
        ct,
        clients,
        webhook_token,
        storefront_token: secret(env, connector::config::env::CT_OMNISEND_STOREFRONT_TOKEN),
        recovery_secret,
        oidc,
        idle_poll: Duration::from_millis(500),
        // Unique even for PID 1 in containers sharing a host name.
        instance: format!(
            "{}-{}-{}",
            hostname(env),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        admin_password,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let bound = listener.local_addr()?;
    // One line on stdout with the bound address: scripts and tests read it (port 0).
    println!("listening on http://{bound}");
    tracing::info!(address = %bound, "serving");
    run(service, listener, shutdown_on_signals()).await?;
    Ok(ExitCode::SUCCESS)
}

fn hostname(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("HOSTNAME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ct-omnisend".into())
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}
