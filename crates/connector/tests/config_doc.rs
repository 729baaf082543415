//! Keeps `docs/configuration.md` in step with the typed configuration.
//!
//! The keys of each section are derived from the code, not listed by hand: `RawSettings` and
//! its sections refuse unknown keys (`deny_unknown_fields`), and serde's error for an unknown
//! key lists every allowed one (`unknown field `x`, expected one of `a`, `b`, …`). The test
//! loads a file with a probe key in each section and reads the allowed keys from that message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use connector::config::{RawSettings, Settings};

const PROBE: &str = "zz_probe_key_that_does_not_exist";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Loads `toml` through the real loader (file + environment layer) with an empty environment.
fn load_raw(toml: &str) -> Result<RawSettings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probe.toml");
    std::fs::write(&path, toml).unwrap();
    RawSettings::load(Some(&path), &|_| None).map_err(|e| e.to_string())
}

/// The names serde lists after "expected" in an unknown-field error: `expected `url``,
/// `expected `a` or `b``, `expected one of `a`, `b`, `c``.
fn allowed_keys(toml: &str) -> BTreeSet<String> {
    let err = match load_raw(toml) {
        Ok(_) => panic!("a file with the key {PROBE} must be refused:\n{toml}"),
        Err(e) => e,
    };
    assert!(
        err.contains(&format!("unknown field `{PROBE}`")),
        "expected an unknown-field error naming the probe, got: {err}"
    );
    let (_, after) = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("no `expected` in: {err}"));
    // Stop before config-rs' " for key `section`" suffix.
    let list = after.split(" for key ").next().unwrap_or(after);
    let keys: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys listed in: {err}");
    keys
}

/// Section name as written in TOML (`commercetools`, `stores`) → allowed keys.
fn keys_from_code() -> BTreeMap<String, BTreeSet<String>> {
    let sections = allowed_keys(&format!("{PROBE} = 1\n"));
    sections
        .iter()
        .map(|section| {
            // `stores` is an array of tables; every other section is a table. Try the table
            // form first and fall back to the array form when serde wants a sequence.
            let table = format!("[{section}]\n{PROBE} = 1\n");
            let keys = match load_raw(&table) {
                Err(e) if e.contains("expected a sequence") => {
                    allowed_keys(&format!("[[{section}]]\n{PROBE} = 1\n"))
                }
                _ => allowed_keys(&table),
            };
            (section.clone(), keys)
        })
        .collect()
}

/// Section name (`commercetools`, `stores`) → keys documented in its table: every table row
/// whose first cell is a key in backticks, under a heading `## [section]` or `## [[section]]`,
/// up to the next `## ` heading.
fn keys_from_doc(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let heading = heading.trim();
            current = heading
                .strip_prefix("[[")
                .and_then(|h| h.strip_suffix("]]"))
                .or_else(|| heading.strip_prefix('[').and_then(|h| h.strip_suffix(']')))
                .map(str::to_owned);
            if let Some(section) = &current {
                assert!(
                    out.insert(section.clone(), BTreeSet::new()).is_none(),
                    "section [{section}] is documented twice"
                );
            }
            continue;
        }
        let Some(section) = &current else { continue };
        let Some(first_cell) = line
            .trim()
            .strip_prefix('|')
            .and_then(|r| r.split('|').next())
        else {
            continue;
        };
        let cell = first_cell.trim();
        if let Some(key) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
            assert!(
                out.get_mut(section).unwrap().insert(key.to_owned()),
                "key `{key}` is documented twice in [{section}]"
            );
        }
    }
    out
}

#[test]
fn configuration_doc_lists_every_key_of_the_typed_config() {
    let code = keys_from_code();
    let doc = keys_from_doc(&read("docs/configuration.md"));

    // Sanity: the derivation found the sections and keys we know exist, so an empty or broken
    // parse cannot make the comparison pass vacuously.
    for (section, key) in [
        ("commercetools", "project_key"),
        ("omnisend", "requests_per_minute"),
        ("state", "url"),
        ("catalog", "unpublished"),
        ("stores", "locales"),
    ] {
        assert!(
            code.get(section).is_some_and(|k| k.contains(key)),
            "the key derivation from the code lost {section}.{key}: {code:?}"
        );
    }

    let mut problems = Vec::new();
    for (section, keys) in &code {
        match doc.get(section) {
            None => problems.push(format!(
                "section [{section}] has no `## [{section}]` (or `## [[{section}]]`) heading"
            )),
            Some(documented) => {
                for key in keys.difference(documented) {
                    problems.push(format!("{section}.{key} is in the code but not documented"));
                }
                for key in documented.difference(keys) {
                    problems.push(format!(
                        "{section}.{key} is documented but the code does not accept it"
                    ));
                }
            }
        }
    }
    for section in doc.keys().filter(|s| !code.contains_key(*s)) {
        problems.push(format!(
            "section [{section}] is documented but the code has no such section"
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md and crates/connector/src/config.rs disagree:\n  {}",
        problems.join("\n  ")
    );
}

/// The ```toml blocks of a markdown text.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None if trimmed.starts_with("```toml") => current = Some(String::new()),
            Some(block) if trimmed.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn load_checked(toml: &str) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path), &|_| None).map_err(|e| e.to_string())
}

#[test]
fn the_complete_example_of_the_configuration_doc_loads() {
    let blocks = toml_blocks(&read("docs/configuration.md"));
    let full: Vec<&String> = blocks.iter().filter(|b| b.contains("[[stores]]")).collect();
    assert_eq!(
        full.len(),
        1,
        "docs/configuration.md should hold exactly one complete ```toml example"
    );
    let settings = load_checked(full[0]).unwrap_or_else(|e| panic!("{e}\n{}", full[0]));
    assert_eq!(settings.commercetools.project_key, "my-shop");
    assert_eq!(settings.omnisend.requests_per_minute, 360);
    assert!(settings.stores.len() >= 2, "two brands in the example");
    assert!(settings.stores.iter().all(|s| !s.locales.is_empty()));

    // The example is meant to show every key: each one must appear in it (commented or not).
    for (section, keys) in keys_from_code() {
        for key in keys {
            assert!(
                full[0].contains(&format!("{key} =")),
                "the complete example does not show {section}.{key}"
            );
        }
    }
}

#[test]
fn every_complete_config_example_of_the_readme_loads() {
    let blocks = toml_blocks(&read("README.md"));
    let complete: Vec<&String> = blocks.iter().filter(|b| b.contains("[[stores]]")).collect();
    assert!(
        !complete.is_empty(),
        "README.md should show a config file in a ```toml block"
    );
    for block in complete {
        load_checked(block).unwrap_or_else(|e| panic!("README example refused: {e}\n{block}"));
    }
}

#[test]
fn the_contract_example_config_loads_as_written() {
    let path = repo_root().join("../shared/docs/PRODUCT.md");
    let Ok(product) = std::fs::read_to_string(&path) else {
        println!("skipped: {} not found", path.display());
        return;
    };
    let blocks = toml_blocks(&product);
    let example = blocks
        .iter()
        .find(|b| b.contains("[[stores]]"))
        .expect("PRODUCT.md has a ```toml config example");
    let settings = load_checked(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
    assert_eq!(settings.stores[0].key, "default");
}
