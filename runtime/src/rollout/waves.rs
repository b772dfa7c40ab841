//! A rollout's way forward (docs/semantics.md "Rollouts"): the canary's
//! reload, the gate over its figures, then the other members wave by
//! wave, each wave a normal reload on each of its nodes in parallel and
//! watched before the next. Between two looks (at most a second apart) the
//! coordinator checks that no member was lost and renews the leases of the
//! nodes that took the new version. Any failure is a [`Halt`].

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::coordinator::{Halt, Run};
use super::gate::{self, GateReading};
use super::wire::{Answer, Request};
use crate::events::Event;

/// Fewer messages than this in the window so far: a failing error rate is
/// not yet held against the canary before the window ends.
const EARLY_VERDICT_AFTER: u64 = 10;

impl Run {
    /// Canary, gate, waves.
    ///
    /// # Errors
    /// The [`Halt`] that stopped it.
    pub(super) async fn forward(&mut self) -> Result<(), Halt> {
        self.canary().await?;
        let waves = self.plan.waves.clone();
        for (i, wave) in waves.iter().enumerate() {
            self.wave(i + 1, wave).await?;
        }
        Ok(())
    }

    /// How often the coordinator looks while it watches a window.
    fn poll(&self, window: Duration) -> Duration {
        (window / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// The bound on a figures request while watching.
    fn figures_within(&self, window: Duration) -> Duration {
        (self.poll(window) * 5)
            .max(Duration::from_secs(2))
            .min(self.spec.request_timeout)
    }

    async fn figures(&self, node: &str, within: Duration) -> Result<GateReading, String> {
        let request = Request::Figures {
            module: self.plan.module.clone(),
        };
        match self.ask(node, request, within).await? {
            Answer::Figures(r) => Ok(r),
            other => Err(format!("node {node}: answered {other:?}")),
        }
    }

    /// Reloads `node` (it counts as having taken the new version from the
    /// moment it is asked: its rollback is asked on a halt, and answers
    /// "not held" if it never took it).
    async fn reload(&self, node: &str) -> Result<(String, String, u64), String> {
        let request = Request::Reload {
            module: self.plan.module.clone(),
            library: self.plan.library.clone(),
            rollout: self.plan.id.clone(),
            coordinator: self.me.clone(),
            lease_ms: self.spec.lease.as_millis() as u64,
        };
        match self.ask(node, request, self.spec.request_timeout).await? {
            Answer::Reloaded { from, to, took_ms } => Ok((from, to, took_ms)),
            other => Err(format!("node {node}: answered {other:?}")),
        }
    }

    /// The canary's reload, then its gate.
    async fn canary(&mut self) -> Result<(), Halt> {
        let canary = self.plan.canary.clone();
        let began = self.started.elapsed();
        let base = self
            .figures(&canary, self.spec.request_timeout)
            .await
            .map_err(|e| Halt::Other(format!("the canary's figures: {e}")))?;
        self.upgraded.push(canary.clone());
        let (from, to, took_ms) = match self.reload(&canary).await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the canary's reload failed: {e}");
                self.step("canary", vec![canary], began, false, why.clone());
                return Err(Halt::Other(why));
            }
        };
        self.report.to = to.clone();
        self.step(
            "canary",
            vec![canary.clone()],
            began,
            true,
            format!("{from} -> {to} in {took_ms} ms"),
        );
        self.announce(Event::RolloutCanary {
            rollout: self.plan.id.clone(),
            module: self.plan.module.clone(),
            node: canary.clone(),
            from,
            to,
            took_ms,
        });
        self.gate(&canary, &base).await
    }

    /// Watches the canary for the gate window against `base`, the old
    /// version's figures on it (its period until the reload; the new
    /// version's period begins with the reload, so its figures are the
    /// window's).
    async fn gate(&mut self, canary: &str, base: &GateReading) -> Result<(), Halt> {
        let began = self.started.elapsed();
        let verdict = self
            .watch(self.spec.gate_window, Some((canary, base)))
            .await;
        let (ok, words) = match &verdict {
            Ok(words) => (true, words.clone()),
            Err(Halt::Gate(why) | Halt::Other(why)) => (false, why.clone()),
        };
        self.step("gate", vec![canary.to_string()], began, ok, words.clone());
        match verdict {
            Ok(reading) => {
                self.announce(Event::RolloutGatePassed {
                    rollout: self.plan.id.clone(),
                    module: self.plan.module.clone(),
                    node: canary.to_string(),
                    reading,
                });
                Ok(())
            }
            Err(Halt::Gate(reason)) => {
                self.announce(Event::RolloutGateFailed {
                    rollout: self.plan.id.clone(),
                    module: self.plan.module.clone(),
                    node: canary.to_string(),
                    reason: reason.clone(),
                });
                Err(Halt::Gate(format!(
                    "the canary {canary} failed its gate: {reason}"
                )))
            }
            Err(other) => Err(other),
        }
    }

    /// One wave: a reload on each of its nodes in parallel, then a watch;
    /// recorded as one step.
    async fn wave(&mut self, number: usize, nodes: &[String]) -> Result<(), Halt> {
        if let Some(why) = self.lost() {
            return Err(Halt::Other(why));
        }
        let began = self.started.elapsed();
        let step = format!("wave {number}");
        let result = self.reload_and_watch(number, nodes, &step).await;
        let (ok, detail) = match &result {
            Ok(words) => (true, words.clone()),
            Err(Halt::Gate(why) | Halt::Other(why)) => (false, why.clone()),
        };
        self.step(&step, nodes.to_vec(), began, ok, detail);
        result.map(|_| ())
    }

    /// [`Run::wave`]'s work: the reloads, `rollout.wave`, the watch, and a
    /// last look that each node serves the new version; what went well, in
    /// words.
    async fn reload_and_watch(
        &mut self,
        number: usize,
        nodes: &[String],
        step: &str,
    ) -> Result<String, Halt> {
        let t = Instant::now();
        self.upgraded.extend(nodes.iter().cloned());
        let results = join_all(nodes.iter().map(|n| self.reload(n))).await;
        let mut failures = Vec::new();
        for (node, result) in nodes.iter().zip(results) {
            match result {
                Ok((_, to, _)) if to == self.report.to => {}
                Ok((_, to, _)) => failures.push(format!(
                    "node {node} loaded {to}, not the canary's {}",
                    self.report.to
                )),
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            return Err(Halt::Other(format!(
                "{step} failed: {}",
                failures.join("; ")
            )));
        }
        let took_ms = t.elapsed().as_millis() as u64;
        self.announce(Event::RolloutWave {
            rollout: self.plan.id.clone(),
            module: self.plan.module.clone(),
            wave: number,
            nodes: nodes.to_vec(),
            took_ms,
        });
        self.watch(self.spec.wave_watch, None).await?;
        // Each node of the wave answers, on the new version.
        let within = self.figures_within(self.spec.wave_watch);
        let readings = join_all(nodes.iter().map(|n| self.figures(n, within))).await;
        for (node, reading) in nodes.iter().zip(readings) {
            match reading {
                Ok(r) if r.code_version == self.report.to => {}
                Ok(r) => {
                    return Err(Halt::Other(format!(
                        "node {node} serves {} after {step}",
                        r.code_version
                    )))
                }
                Err(e) => return Err(Halt::Other(e)),
            }
        }
        Ok(format!("reloaded in {took_ms} ms, then watched"))
    }

    /// Watches for `window`: every look checks that no member was lost
    /// and renews the leases; with a gate, also reads the canary's figures
    /// and judges them against its base. The gate's last verdict in words.
    async fn watch(
        &self,
        window: Duration,
        gate: Option<(&str, &GateReading)>,
    ) -> Result<String, Halt> {
        let (poll, within) = (self.poll(window), self.figures_within(window));
        let deadline = Instant::now() + window;
        let mut words = String::new();
        loop {
            if let Some(why) = self.lost() {
                return Err(Halt::Other(why));
            }
            self.renew();
            let over = Instant::now() >= deadline;
            if let Some((canary, base)) = gate {
                let now = self
                    .figures(canary, within)
                    .await
                    .map_err(|e| Halt::Gate(format!("its figures could not be read: {e}")))?;
                match gate::judge(base, &now, &self.report.to, &self.spec) {
                    Ok(w) if over => {
                        gate::enough_seen(&now, &self.spec).map_err(Halt::Gate)?;
                        words = w;
                    }
                    Ok(w) => words = w,
                    Err(why)
                        if over
                            || now.handled.saturating_sub(base.handled) >= EARLY_VERDICT_AFTER =>
                    {
                        return Err(Halt::Gate(why))
                    }
                    Err(_) => {}
                }
            }
            if over {
                return Ok(words);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(poll.min(left)).await;
        }
    }
}
