//! `molt config check FILE`: parse and validate a config file; with
//! `--against OTHER`, also print the plan of applying it over OTHER (a dry
//! run). Comparing with a running node is `--node` (see `remote.rs`).

use std::path::Path;
use std::process::ExitCode;

use molt::config::diff;

/// Validates `file`; with `against`, also plans applying it over that
/// config. Exit 0 when valid (and applicable), 2 otherwise.
pub fn check(file: &Path, against: Option<&Path>) -> ExitCode {
    let new = match molt::config::file::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("molt: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "{}: valid ({} module(s))",
        file.display(),
        new.modules.len()
    );
    // Alone, the file is only validated: a new config is not a change to
    // anything (issue #10 §5). Comparing is what --against / --node are for.
    let Some(path) = against else {
        return ExitCode::SUCCESS;
    };
    let running = match molt::config::file::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("molt: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = diff::plan(&running, &new);
    println!("against {}:", path.display());
    println!("{}", diff::render(&plan));
    if plan.is_applicable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
