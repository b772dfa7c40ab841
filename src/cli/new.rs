//! `molt new NAME`: scaffolds a module as a small cargo workspace of its
//! own, outside this repository: the module crate (a `cdylib`), its protocol
//! crate, a `molt.toml` that runs it and a short README.
//!
//! The templates are embedded in the binary (`new/template/`); their
//! placeholders are `{{name}}` (the module and package name), `{{lib}}` (the
//! name as a Rust identifier), `{{molt_abi_dep}}` (the molt-abi dependency
//! line) and `{{library}}` (the debug build's library, relative to the
//! scaffold).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The files of a scaffold: where each goes (`{{name}}` replaced) and its
/// template.
const FILES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("new/template/Cargo.toml.in")),
    ("README.md", include_str!("new/template/README.md.in")),
    ("molt.toml", include_str!("new/template/molt.toml.in")),
    (".gitignore", include_str!("new/template/gitignore.in")),
    (
        "{{name}}/Cargo.toml",
        include_str!("new/template/module.Cargo.toml.in"),
    ),
    (
        "{{name}}/src/lib.rs",
        include_str!("new/template/module.lib.rs.in"),
    ),
    (
        "{{name}}-proto/Cargo.toml",
        include_str!("new/template/proto.Cargo.toml.in"),
    ),
    (
        "{{name}}-proto/src/lib.rs",
        include_str!("new/template/proto.lib.rs.in"),
    ),
];

/// Where the scaffold takes molt-abi from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbiSource {
    /// A path dependency on a checkout (this binary's, by default).
    Path(PathBuf),
    /// A git dependency on a repository of molt.
    Git(String),
}

impl AbiSource {
    /// The molt-abi of the checkout this binary was built from.
    pub fn this_checkout() -> AbiSource {
        AbiSource::Path(molt::workspace_dir().join("modules/abi"))
    }

    /// The `[workspace.dependencies]` line.
    fn dependency(&self) -> String {
        match self {
            AbiSource::Path(p) => format!("molt-abi = {{ path = {} }}", toml_string(p)),
            AbiSource::Git(url) => format!("molt-abi = {{ git = {} }}", toml_str(url)),
        }
    }
}

/// Why a scaffold was not written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name is not a valid crate name.
    #[error("{name:?} is not a valid module name: {why}")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// The target folder exists and is not empty.
    #[error("{} already exists and is not empty: choose another NAME or --path", .0.display())]
    NotEmpty(PathBuf),
    /// The molt-abi checkout to depend on is missing.
    #[error(
        "molt-abi is not at {} (this molt was built from a checkout that has moved): \
         give --molt-git URL, or run a molt built from a checkout",
        .0.display()
    )]
    NoAbi(PathBuf),
    /// A file or folder could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

/// `molt new`: writes the scaffold and says what to do next.
pub fn run(name: &str, path: Option<PathBuf>, git: Option<String>) -> ExitCode {
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    let abi = git.map_or_else(AbiSource::this_checkout, AbiSource::Git);
    match scaffold(name, &dir, &abi) {
        Ok(()) => {
            let from = match &abi {
                AbiSource::Path(p) => p.display().to_string(),
                AbiSource::Git(url) => url.clone(),
            };
            println!(
                "molt: created module {name} in {} (crates {name} and {name}-proto; molt-abi from {from})",
                dir.display()
            );
            let inside =
                std::path::absolute(&dir).is_ok_and(|d| d.starts_with(molt::workspace_dir()));
            if inside {
                eprintln!(
                    "molt new: note: {} is inside the molt checkout {}; a module usually lives \
                     outside it (`--path ../{name}`)",
                    dir.display(),
                    molt::workspace_dir().display()
                );
            }
            println!("next:");
            println!("  cd {}", dir.display());
            println!("  cargo build");
            println!("  molt dev molt.toml        # rebuilds and reloads {name} on save");
            println!("  molt call {name} '{{\"Hello\": {{\"name\": \"you\"}}}}'");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("molt new: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes the scaffold of module `name` into `dir` (created; it must not
/// exist or be empty).
///
/// # Errors
/// [`NewError`] for a bad name, a non-empty folder, a missing molt-abi
/// checkout or a failed write; nothing is written for the first three.
pub fn scaffold(name: &str, dir: &Path, abi: &AbiSource) -> Result<(), NewError> {
    check_name(name)?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(NewError::NotEmpty(dir.to_path_buf()));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(NewError::NotEmpty(dir.to_path_buf()));
    }
    if let AbiSource::Path(p) = abi {
        if !p.join("Cargo.toml").is_file() {
            return Err(NewError::NoAbi(p.clone()));
        }
    }
    let lib = name.replace('-', "_");
    let library = format!(
        "target/debug/{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let fill = |text: &str| {
        text.replace("{{molt_abi_dep}}", &abi.dependency())
            .replace("{{library}}", &library)
            .replace("{{lib}}", &lib)
            .replace("{{name}}", name)
    };
    for (file, template) in FILES {
        let path = dir.join(fill(file));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| NewError::Write {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        std::fs::write(&path, fill(template)).map_err(|error| NewError::Write { path, error })?;
    }
    Ok(())
}

/// Refuses what cargo refuses as a package name, and what would not make a
/// Rust identifier of its library (`-` becomes `_`).
fn check_name(name: &str) -> Result<(), NewError> {
    let bad = |why: &str| {
        Err(NewError::BadName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    let Some(first) = name.chars().next() else {
        return bad("it is empty");
    };
    if !first.is_ascii_alphabetic() {
        return bad("it must start with an ASCII letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return bad(&format!(
            "{c:?} is not allowed (only ASCII letters, digits, '-' and '_')"
        ));
    }
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    const RESERVED: &[&str] = &[
        "abstract",
        "as",
        "async",
        "await",
        "become",
        "box",
        "break",
        "const",
        "continue",
        "crate",
        "do",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "final",
        "fn",
        "for",
        "gen",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "macro",
        "match",
        "mod",
        "move",
        "mut",
        "override",
        "priv",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "try",
        "type",
        "typeof",
        "unsafe",
        "unsized",
        "use",
        "virtual",
        "where",
        "while",
        "yield",
        "std",
        "core",
        "alloc",
        "test",
        "proc_macro",
        "molt",
        "molt-abi",
        "molt_abi",
    ];
    if RESERVED.contains(&name.replace('-', "_").as_str()) || RESERVED.contains(&name) {
        return bad("it is a Rust keyword or a name cargo or molt already uses");
    }
    Ok(())
}

/// A TOML basic string of `s`.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML string of a path (forward slashes are fine on every platform).
fn toml_string(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cargo_refuses_are_refused() {
        for ok in ["greeter", "rate-limiter", "kv_2", "A1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("9lives", "start with an ASCII letter"),
            ("-x", "start with an ASCII letter"),
            ("my module", "' ' is not allowed"),
            ("café", "'é' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("fn", "keyword"),
            ("std", "keyword"),
        ] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn the_abi_dependency_is_a_path_or_a_git_url() {
        assert_eq!(
            AbiSource::Path("/src/molt/modules/abi".into()).dependency(),
            r#"molt-abi = { path = "/src/molt/modules/abi" }"#
        );
        assert_eq!(
            AbiSource::Git("https://example.invalid/molt".into()).dependency(),
            r#"molt-abi = { git = "https://example.invalid/molt" }"#
        );
    }
}
