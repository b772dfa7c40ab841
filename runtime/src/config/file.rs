//! The config file: TOML, parsed with serde into [`NodeConfig`]. Paths in it
//! are relative to the file's folder.
//!
//! ```toml
//! [node]
//! name = "molt"
//! library_dirs = ["target/release"]
//!
//! [modules.kv]
//! library = "target/release/libkv.so"
//! instances = 2
//! config = { max_value_len = 4096 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{ModuleSpec, NodeConfig};
use crate::error::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node: NodeSection,
    #[serde(default)]
    modules: BTreeMap<String, ModuleSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    name: String,
    #[serde(default)]
    library_dirs: Vec<PathBuf>,
    #[serde(default)]
    admin_token_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleSection {
    library: PathBuf,
    #[serde(default = "one")]
    instances: u32,
    #[serde(default)]
    config: Option<toml::Table>,
}

fn one() -> u32 {
    1
}

/// Reads and parses a config file.
///
/// # Errors
/// [`Error::ConfigFile`] naming the file, line and key.
pub fn load(path: &Path) -> Result<NodeConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text, path)
}

/// Parses config text; relative paths are taken from `path`'s folder.
///
/// # Errors
/// [`Error::ConfigFile`] naming the file, line and key.
pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, Error> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((0, 0));
        Error::ConfigFile {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut config = NodeConfig::new(file.node.name);
    config.library_dirs = file
        .node
        .library_dirs
        .into_iter()
        .map(|d| base.join(d))
        .collect();
    config.admin_token_file = file.node.admin_token_file.map(|f| base.join(f));
    for (name, m) in file.modules {
        let mut spec = ModuleSpec::new(name, base.join(m.library)).instances(m.instances);
        if let Some(table) = m.config {
            spec.config = serde_json::to_value(table).map_err(|e| Error::Config(e.to_string()))?;
        }
        config.modules.push(spec);
    }
    config.validate()?;
    Ok(config)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}
