//! Shared test equipment: both emulators, a generated shop, a fresh state store and settings
//! routing the two generated stores to two Omnisend brands.

#![allow(dead_code)]

pub mod contract;
pub mod oracle;
pub mod shop;

use std::collections::HashMap;
use std::path::Path;

use connector::config::Settings;
use connector::store::testing::TestStore;
use connector::store::{Backend, StateStore};
use connector::sync::RunSummary;
use connector::sync::catalog::{CatalogOptions, CatalogSync};
use connector::sync::sink::Sink;
use emulators::seed::{CatalogData, CatalogGenerator, CatalogSpec, generate_catalog};
use emulators::{CtEmulator, CtEmulatorConfig, OmnisendEmulator, OmnisendEmulatorConfig};

pub const PROJECT: &str = "test-shop";
pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret-value";
pub const US_KEY: &str = "brand-us-api-key";
pub const EU_KEY: &str = "brand-eu-api-key";

/// Both emulators with a generated catalog, a state store and settings.
pub struct Harness {
    pub ct: CtEmulator,
    pub omnisend: OmnisendEmulator,
    pub data: CatalogData,
    pub generator: CatalogGenerator,
    pub store: TestStore,
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "KEY_US" => Some(US_KEY.into()),
        "KEY_EU" => Some(EU_KEY.into()),
        _ => None,
    }
}

pub fn config_toml(
    ct_api: &str,
    ct_auth: &str,
    omnisend: &str,
    extra_catalog: &str,
    rpm: u32,
) -> String {
    format!(
        r#"
[commercetools]
project_key = "{PROJECT}"
api_url = "{ct_api}"
auth_url = "{ct_auth}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
timeout_secs = 10

[omnisend]
api_url = "{omnisend}"
requests_per_minute = {rpm}
batch_poll_interval_ms = 50

[catalog]
{extra_catalog}

{stores}"#,
        stores = emulators::seed::store_routes_toml("KEY_US", "KEY_EU"),
    )
}

pub fn load_settings(dir: &Path, toml: &str, state_url: &str) -> Settings {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let mut s = Settings::load(Some(&path), &|_| None).unwrap();
    s.state_url = state_url.to_owned();
    s
}

impl Harness {
    /// A shop of `products` products on SQLite.
    pub async fn start(products: usize) -> Harness {
        Self::start_on(Backend::Sqlite, products)
            .await
            .expect("sqlite is always available")
    }

    /// `None` when the backend is PostgreSQL and `CT_OMNISEND_TEST_POSTGRES` is not set.
    pub async fn start_on(backend: Backend, products: usize) -> Option<Harness> {
        let store = TestStore::new(backend)
            .await
            .expect("state store for tests")?;
        let ct = CtEmulator::start(CtEmulatorConfig {
            project_key: PROJECT.into(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..CtEmulatorConfig::default()
        })
        .await
        .unwrap();
        let omnisend = OmnisendEmulator::start(OmnisendEmulatorConfig::default())
            .await
            .unwrap();
        let spec = CatalogSpec {
            products,
            categories: 30,
            seed: 7,
        };
        let data = generate_catalog(&spec);
        ct.seed(&data);
        let dir = tempfile::tempdir().unwrap();
        let settings = load_settings(
            dir.path(),
            &config_toml(&ct.api_url(), &ct.auth_url(), &omnisend.base_url(), "", 360),
            store.url(),
        );
        Some(Harness {
            ct,
            omnisend,
            data,
            generator: CatalogGenerator::new(&spec),
            store,
            settings,
            _dir: dir,
        })
    }

    pub fn state(&self) -> &StateStore {
        self.store.store()
    }

    pub fn engine(&self) -> CatalogSync {
        self.engine_with(&self.settings)
    }

    pub fn engine_with(&self, settings: &Settings) -> CatalogSync {
        let ct = connector::app::commercetools_client(settings).unwrap();
        let sinks: HashMap<String, Sink> = connector::app::sinks(settings, &env, None).unwrap();
        CatalogSync::new(ct, self.state().clone(), settings.clone(), sinks)
    }

    pub async fn sync(&self, full: bool) -> Vec<RunSummary> {
        self.engine()
            .run(&CatalogOptions { full, store: None }, &|_| {})
            .await
            .expect("sync succeeds")
    }

    /// Replaces the settings' catalog section.
    pub fn settings_with_catalog(&self, catalog_toml: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        load_settings(
            dir.path(),
            &config_toml(
                &self.ct.api_url(),
                &self.ct.auth_url(),
                &self.omnisend.base_url(),
                catalog_toml,
                360,
            ),
            self.store.url(),
        )
    }

    /// Product writes (batches to /products, PUT/POST/DELETE /products/…) since the log was cleared.
    pub fn product_writes(&self) -> Vec<emulators::LoggedRequest> {
        self.omnisend
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .filter(|r| {
                r.path.starts_with("/products")
                    || (r.path == "/batches"
                        && r.body.as_ref().is_some_and(|b| b["endpoint"] == "products"))
            })
            .collect()
    }
}

/// The run summary for `store`/`entity`.
pub fn run<'a>(runs: &'a [RunSummary], store: &str, entity: &str) -> &'a RunSummary {
    runs.iter()
        .find(|r| r.store == store && r.entity == entity)
        .unwrap_or_else(|| panic!("no run for {store}/{entity}"))
}
