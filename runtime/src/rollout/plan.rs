//! A rollout's plan and its library check (docs/semantics.md "Rollouts"):
//! every member reachable and running the module, the same file (SHA-256)
//! at the library path on each, a canary, and the other members in waves.
//! Anything else refuses the rollout before any node changes.
//!
//! Every node loads the library from its own disk: molt does not write
//! executable code it received over the network (a node's library
//! directories hold what its deploy put there), so the rollout checks the
//! files instead of shipping bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;

use super::coordinator::Ctx;
use super::wire::{self, Answer, Request};
use super::RolloutRequest;
use crate::error::Error;

/// What a rollout will do.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The rollout's id: the coordinator's name and the time it began.
    pub id: String,
    pub module: String,
    pub library: PathBuf,
    pub canary: String,
    /// The other members, wave by wave.
    pub waves: Vec<Vec<String>>,
    /// Every member with the incarnation it had when the plan was made
    /// (a new one mid-rollout: it restarted, lost).
    pub members: BTreeMap<String, String>,
    /// The canary's code version before.
    pub from: String,
}

fn refused(why: String) -> Error {
    Error::RolloutRefused(why)
}

/// The library check's verdict on every member's SHA-256 of the file at
/// `library`: the canary's is the reference.
///
/// # Errors
/// [`Error::RolloutRefused`] naming the first member whose file differs,
/// the path and both hashes.
fn same_file(hashes: &BTreeMap<String, String>, canary: &str, library: &Path) -> Result<(), Error> {
    let Some(reference) = hashes.get(canary) else {
        return Err(refused(format!(
            "the canary {canary} did not hash the library"
        )));
    };
    match hashes.iter().find(|(_, h)| *h != reference) {
        Some((node, hash)) => Err(refused(format!(
            "node {node} has a different file at {}: sha256 {hash} there, {reference} on {canary}",
            library.display()
        ))),
        None => Ok(()),
    }
}

/// Makes the plan of `request`, checking the library on every member.
///
/// # Errors
/// [`Error::NotInCluster`]; [`Error::RolloutRefused`] naming the member
/// and the cause: a relative library path, an unknown canary, a member
/// unreachable or without a rollout agent, the module missing on it, the
/// file missing or different there (both hashes).
pub(super) async fn make(
    ctx: &Ctx,
    request: &RolloutRequest,
    wave_size: usize,
) -> Result<Plan, Error> {
    let library = request.library.clone();
    if !library.is_absolute() {
        return Err(refused(format!(
            "library path {} must be absolute (each node reads it from its own disk)",
            library.display()
        )));
    }
    let status = ctx.view.status(Vec::new()).ok_or(Error::NotInCluster)?;
    let canary = request.canary.clone().unwrap_or_else(|| ctx.me.clone());
    if status.member(&canary).is_none() {
        return Err(refused(format!(
            "canary {canary} is not a member of the cluster (members: {})",
            status
                .members
                .iter()
                .map(|m| m.node.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(m) = status.members.iter().find(|m| !m.reachable) {
        return Err(refused(format!(
            "node {} is unreachable: a rollout needs every member",
            m.node
        )));
    }
    let members: BTreeMap<String, String> = status
        .members
        .iter()
        .map(|m| (m.node.clone(), m.incarnation.clone()))
        .collect();
    let mut agents = Vec::new();
    for node in members.keys() {
        let agent = wire::agent_of(node).ok_or_else(|| {
            refused(format!(
                "node {node}: no rollout agent is known (not connected yet?)"
            ))
        })?;
        agents.push((node.clone(), agent));
    }
    let within = ctx.spec.request_timeout;
    let answers = join_all(agents.iter().map(|(node, agent)| {
        let request = Request::Hash {
            module: request.module.clone(),
            library: library.clone(),
        };
        async move { (node.clone(), wire::ask(agent, request, within).await) }
    }))
    .await;
    let mut hashes = BTreeMap::new();
    let mut from = String::new();
    for (node, answer) in answers {
        match answer {
            Ok(Answer::Hash { hash, version }) => {
                let Some(version) = version else {
                    return Err(refused(format!(
                        "node {node} runs no module {}",
                        request.module
                    )));
                };
                let hash =
                    hash.map_err(|e| refused(format!("node {node} cannot read the library: {e}")))?;
                if node == canary {
                    from = version;
                }
                hashes.insert(node, hash);
            }
            Ok(other) => {
                return Err(refused(format!(
                    "node {node} answered the library check with {other:?}"
                )))
            }
            Err(e) => return Err(refused(format!("node {node}: library check: {e}"))),
        }
    }
    same_file(&hashes, &canary, &library)?;
    let others: Vec<String> = members.keys().filter(|n| **n != canary).cloned().collect();
    let waves = others
        .chunks(wave_size.max(1))
        .map(<[String]>::to_vec)
        .collect();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Ok(Plan {
        id: format!("{}-{started}", ctx.me),
        module: request.module.clone(),
        library,
        canary,
        waves,
        members,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_file_on_one_member_refuses_naming_it_and_both_hashes() {
        let lib = Path::new("/srv/molt/libkv.so");
        let mut hashes: BTreeMap<String, String> = ["a", "b", "c"]
            .iter()
            .map(|n| (n.to_string(), "aa11".to_string()))
            .collect();
        assert!(same_file(&hashes, "a", lib).is_ok());
        hashes.insert("c".into(), "cc33".into());
        let e = same_file(&hashes, "a", lib).unwrap_err().to_string();
        assert_eq!(
            e,
            "rollout refused: node c has a different file at /srv/molt/libkv.so: sha256 cc33 there, aa11 on a"
        );
        // The canary's file is the reference.
        let e = same_file(&hashes, "c", lib).unwrap_err().to_string();
        assert!(e.contains("node a has a different file"), "{e}");
    }
}
