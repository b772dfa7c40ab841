//! `molt config check FILE`: parse and validate a config file and print the
//! plan of applying it over the running configuration (a dry run).

use std::path::Path;
use std::process::ExitCode;

use molt::config::diff;

pub fn check(file: &Path, against: Option<&Path>) -> ExitCode {
    let new = match molt::config::file::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("molt: {e}");
            return ExitCode::from(2);
        }
    };
    let (running, what) = match against {
        Some(path) => match molt::config::file::load(path) {
            Ok(c) => (c, path.display().to_string()),
            Err(e) => {
                eprintln!("molt: {e}");
                return ExitCode::from(2);
            }
        },
        None => (
            molt::config::file::builtin(&molt::workspace_dir()),
            "the built-in configuration".to_string(),
        ),
    };
    println!(
        "{}: valid ({} module(s))",
        file.display(),
        new.modules.len()
    );
    let plan = diff::plan(&running, &new);
    println!("against {what}:");
    println!("{}", diff::render(&plan));
    if plan.is_applicable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
