//! Builds the Savina module libraries and starts a node running them: shared
//! by `benches/savina.rs` and `tests/savina.rs` (included with `#[path]`).

use molt::cargo_build::{build, library_of, BuildRequest};
use molt::{ModuleSpec, Node, NodeConfig};
use savina_proto::{counting, forkjoin, pingpong, ring};

/// The module crates of the Savina subset.
const PACKAGES: &[&str] = &[
    "savina-pinger",
    "savina-ponger",
    "savina-producer",
    "savina-counter",
    "savina-ring",
    "savina-fj-worker",
];

/// Builds the modules (`release` or debug) and starts node `name` with
/// `ring_actors` ring instances and `fj_actors` fork-join workers.
pub async fn start(name: &str, release: bool, ring_actors: u32, fj_actors: u32) -> Node {
    let libs = build(&BuildRequest {
        manifest: molt::workspace_dir().join("Cargo.toml"),
        packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
        release,
        target_dir: None,
        progress: false,
    })
    .expect("build the savina modules");
    let lib = |package: &str| library_of(&libs, package).unwrap_or_else(|e| panic!("{e}"));
    Node::start(
        NodeConfig::new(name)
            .module(ModuleSpec::new(pingpong::PINGER, lib("savina-pinger")))
            .module(ModuleSpec::new(pingpong::PONGER, lib("savina-ponger")))
            .module(ModuleSpec::new(counting::PRODUCER, lib("savina-producer")))
            .module(ModuleSpec::new(counting::COUNTER, lib("savina-counter")))
            .module(ModuleSpec::new(ring::RING, lib("savina-ring")).instances(ring_actors))
            .module(
                ModuleSpec::new(forkjoin::WORKER, lib("savina-fj-worker")).instances(fj_actors),
            ),
    )
    .await
    .expect("start the node")
}
