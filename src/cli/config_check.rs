//! `molt config check FILE`: parse and validate a config file, then check
//! each module inside its library (the library exists and is that molt
//! module, and the module decodes its `config` table: a wrong key or type is
//! named); with `--against OTHER`, also print the plan of applying it over
//! OTHER (a dry run). Comparing with a running node is `--node` (see
//! `remote.rs`).

use std::path::Path;
use std::process::ExitCode;

use molt::config::diff;
use molt::NodeConfig;

/// Validates `file` and its modules; with `against`, also plans applying
/// it over that config. Exit 0 when valid (and applicable), 2 otherwise.
pub async fn check(file: &Path, against: Option<&Path>) -> ExitCode {
    let new = match validate(file).await {
        Ok(c) => c,
        Err(code) => return code,
    };
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

/// Parses and validates `file`, then checks each of its modules in its
/// library (the same load and config decoding a node does, nothing
/// started); prints the verdict. Exit code 2 when anything is wrong.
pub async fn validate(file: &Path) -> Result<NodeConfig, ExitCode> {
    let new = match molt::config::file::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("molt: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let checks = match molt::rehearsal::check_modules(&new).await {
        Ok(checks) => checks,
        Err(e) => {
            eprintln!("molt: {e}");
            return Err(ExitCode::from(2));
        }
    };
    let mut bad = 0;
    for c in &checks {
        if let Err(e) = &c.result {
            bad += 1;
            eprintln!("molt: {}: module {}: {e}", file.display(), c.module);
        }
    }
    if bad > 0 {
        eprintln!(
            "molt: {}: invalid ({bad} of {} module(s) would not start)",
            file.display(),
            checks.len()
        );
        return Err(ExitCode::from(2));
    }
    println!(
        "{}: valid ({} module(s))",
        file.display(),
        new.modules.len()
    );
    for c in &checks {
        if let Ok(lib) = &c.result {
            println!("  {}: {lib}, config ok", c.module);
        }
    }
    Ok(new)
}
