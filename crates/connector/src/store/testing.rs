//! Test support: fresh, isolated [`StateStore`]s for either backend.
//!
//! Always compiled (hidden from docs) so integration tests of this crate and
//! of other crates can use it without a feature flag; it adds no dependencies.
//!
//! * SQLite: a new file in a fresh directory under the system temp dir, removed
//!   when the [`TestStore`] is dropped.
//! * PostgreSQL: only when `CT_OMNISEND_TEST_POSTGRES` holds a server URL
//!   (e.g. `postgres://postgres@127.0.0.1:5432/test`). Each `TestStore` creates a
//!   uniquely named schema, connects with `search_path` set to it, and drops it
//!   (`CASCADE`) when dropped — so tests can run in parallel and repeatedly.
//!
//! ```ignore
//! let Some(t) = TestStore::new(Backend::Postgres).await? else {
//!     println!("{}", testing::POSTGRES_SKIP_MESSAGE);
//!     return;
//! };
//! t.store().ping().await?;
//! ```

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{Backend, StateStore, StoreError, migrations};

/// Environment variable holding the Postgres server URL for tests.
pub const POSTGRES_ENV: &str = "CT_OMNISEND_TEST_POSTGRES";

/// The line to print when a Postgres test is skipped.
pub const POSTGRES_SKIP_MESSAGE: &str = "skipped: CT_OMNISEND_TEST_POSTGRES not set";

/// The Postgres test server URL, if configured (non-empty env var).
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// `(version, description)` of the embedded migrations of `backend`, in order.
pub fn embedded_migrations(backend: Backend) -> Vec<(i64, &'static str)> {
    migrations::embedded(backend)
        .iter()
        .map(|m| (m.version, m.description))
        .collect()
}

/// A [`StateStore`] on a throw-away database, cleaned up on drop.
#[derive(Debug)]
pub struct TestStore {
    store: StateStore,
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Dir(PathBuf),
    Schema { server_url: String, schema: String },
}

impl TestStore {
    /// A fresh store for `backend`. `Ok(None)` only for Postgres when
    /// [`POSTGRES_ENV`] is not set; an unreachable configured server is an error.
    pub async fn new(backend: Backend) -> Result<Option<TestStore>, StoreError> {
        match backend {
            Backend::Sqlite => Self::sqlite().await.map(Some),
            Backend::Postgres => match postgres_url() {
                Some(url) => Self::postgres(&url).await.map(Some),
                None => Ok(None),
            },
        }
    }

    /// A fresh SQLite store in a new temporary directory.
    pub async fn sqlite() -> Result<TestStore, StoreError> {
        let dir = std::env::temp_dir().join(format!("ct-omnisend-store-{}", uuid::Uuid::new_v4()));
        // `connect` creates the directory and the file.
        let url = format!("sqlite://{}", dir.join("state.db").display());
        let cleanup = Cleanup::Dir(dir);
        match StateStore::connect(&url).await {
            Ok(store) => Ok(TestStore {
                store,
                url,
                cleanup,
            }),
            Err(e) => {
                cleanup.run();
                Err(e)
            }
        }
    }

    /// A fresh store in a new schema of the Postgres server at `server_url`.
    pub async fn postgres(server_url: &str) -> Result<TestStore, StoreError> {
        let schema = format!("ct_omnisend_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server_url).await?;
        // `schema` is generated above from a UUID: safe to interpolate.
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let cleanup = Cleanup::Schema {
            server_url: server_url.to_owned(),
            schema: schema.clone(),
        };

        let mut url = match url::Url::parse(server_url) {
            Ok(url) => url,
            Err(_) => {
                cleanup.run();
                return Err(StoreError::UnsupportedUrl(server_url.to_owned()));
            }
        };
        url.query_pairs_mut()
            .append_pair("options[search_path]", &schema);
        let url = url.to_string();
        match StateStore::connect(&url).await {
            Ok(store) => Ok(TestStore {
                store,
                url,
                cleanup,
            }),
            Err(e) => {
                cleanup.run();
                Err(e)
            }
        }
    }

    /// The store.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// A URL that connects to the same database (and schema) again.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Cleanup {
    /// Best-effort removal; never panics (it runs from `Drop`).
    fn run(&self) {
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { server_url, schema } => {
                let server_url = server_url.clone();
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                // Drop may run inside an async runtime: use a separate thread
                // with its own runtime instead of blocking the caller's.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        if let Ok(mut conn) = PgConnection::connect(&server_url).await {
                            let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
                            let _ = conn.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        self.cleanup.run();
    }
}

/// Runs each listed test function (`async fn name(t: &TestStore)`) once per backend: a
/// `sqlite::name` test always, a `postgres::name` test that prints
/// [`POSTGRES_SKIP_MESSAGE`] and passes when `CT_OMNISEND_TEST_POSTGRES` is not set (and fails
/// when it is set and the server cannot be used).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::store::testing::TestStore::new($crate::store::Backend::Sqlite)
                        .await
                        .expect("sqlite test store")
                        .expect("sqlite is always available");
                    assert_eq!(t.store().backend(), $crate::store::Backend::Sqlite);
                    super::$name(&t).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(t) =
                        $crate::store::testing::TestStore::new($crate::store::Backend::Postgres)
                            .await
                            .expect("CT_OMNISEND_TEST_POSTGRES is set but the test store failed")
                    else {
                        println!("{}", $crate::store::testing::POSTGRES_SKIP_MESSAGE);
                        return;
                    };
                    assert_eq!(t.store().backend(), $crate::store::Backend::Postgres);
                    super::$name(&t).await;
                }
            )*
        }
    };
}
