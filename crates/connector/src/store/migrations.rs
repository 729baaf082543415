//! Embedded schema migrations, one list per backend.
//!
//! The SQL files live in `crates/connector/migrations/{sqlite,postgres}/` and are
//! embedded with `include_str!` (so editing a file recompiles the crate). We
//! build the `Migrator` by hand instead of with `sqlx::migrate!` because that
//! macro needs sqlx's `macros` feature, which would compile sqlx and the bundled
//! SQLite a second time for the proc-macro host. Checksums are computed the
//! same way `migrate!`/`sqlx-cli` do, so switching later is compatible.
//!
//! **Adding a migration:** add `NNNN_description.sql` to *both* directories and
//! one line to *both* lists below. The `embedded_migrations_match_the_migration_directories`
//! test fails if a file is not listed.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::Backend;

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

const SQLITE: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Embedded {
        version: 2,
        description: "refresh_at",
        sql: include_str!("../../migrations/sqlite/0002_refresh_at.sql"),
    },
    Embedded {
        version: 3,
        description: "contacts",
        sql: include_str!("../../migrations/sqlite/0003_contacts.sql"),
    },
    Embedded {
        version: 4,
        description: "inbox",
        sql: include_str!("../../migrations/sqlite/0004_inbox.sql"),
    },
    Embedded {
        version: 5,
        description: "events",
        sql: include_str!("../../migrations/sqlite/0005_events.sql"),
    },
    Embedded {
        version: 6,
        description: "jobs",
        sql: include_str!("../../migrations/sqlite/0006_jobs.sql"),
    },
];

const POSTGRES: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Embedded {
        version: 2,
        description: "refresh_at",
        sql: include_str!("../../migrations/postgres/0002_refresh_at.sql"),
    },
    Embedded {
        version: 3,
        description: "contacts",
        sql: include_str!("../../migrations/postgres/0003_contacts.sql"),
    },
    Embedded {
        version: 4,
        description: "inbox",
        sql: include_str!("../../migrations/postgres/0004_inbox.sql"),
    },
    Embedded {
        version: 5,
        description: "events",
        sql: include_str!("../../migrations/postgres/0005_events.sql"),
    },
    Embedded {
        version: 6,
        description: "jobs",
        sql: include_str!("../../migrations/postgres/0006_jobs.sql"),
    },
];

/// The embedded migrations of `backend`, in version order.
pub(crate) fn embedded(backend: Backend) -> &'static [Embedded] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// A migrator over the embedded migrations of `backend`.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        embedded(backend)
            .iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
