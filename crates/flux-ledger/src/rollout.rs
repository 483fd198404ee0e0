//! Rolling updates: an update that changes what an app runs reaches its
//! instances one at a time, so the app never has zero instances running.
//!
//! The update's block keeps the spec the instances ran before as the app's
//! [`Rollout`]. Instance slot `k` keeps running that previous spec until
//! chain time reaches its switch time, `started_ms + k × interval_ms`
//! (slot 0 switches in the update's own block), and runs the app's spec from
//! then on. Everything follows from the record and the chain time, both in
//! the state root, so every node switches the same slot at the same block.
//!
//! - Slots the previous spec did not have (the update added instances) run
//!   the new spec at once; slots the update removed go at once.
//! - An update that changes only what does not run (instances, description,
//!   period) leaves a rollout in progress as it is.
//! - An update during a rollout keeps the rollout's previous spec (what the
//!   slots not yet switched still run) and starts again at its own block:
//!   the slots that had already switched run the intermediate spec, which is
//!   no longer in force, so they switch at once; the slots still on the
//!   previous spec follow one interval apart, starting one interval later.
//!   At least one slot (the last one) still runs the previous spec when this
//!   happens, so something keeps serving while the others restart, and no
//!   slot ever goes back to an older spec. An update back to the previous
//!   spec ends the rollout: the switched slots return to it at once and the
//!   others keep running.
//! - The rollout is dropped at the end of the first block whose time is at or
//!   after the last slot's switch, through an index ordered by that time.
//! - The interval is `params.scheduler.update_roll_interval_ms` when the
//!   update is included, kept in the rollout, so a later param change does
//!   not move a running rollout.

use borsh::{BorshDeserialize, BorshSerialize};
use flux_types::AppSpec;
use serde::{Deserialize, Serialize};

use crate::state::{AppRecord, State, app_key};

/// A rolling update in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct Rollout {
    /// The spec the slots not switched yet still run.
    pub previous: AppSpec,
    /// Chain time of the block that started this rollout, ms.
    pub started_ms: u64,
    /// Chain time between two consecutive slots' switches, ms.
    pub interval_ms: u64,
    /// The first slots, which had already left `previous` for an
    /// intermediate spec when this rollout started: they switch at once.
    pub switched_before: u32,
}

/// How far a rolling update has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutProgress {
    /// Slots that run the spec in force.
    pub updated: u32,
    /// Slots the rollout switches (the instances both specs have).
    pub of: u32,
    /// Chain time at which the next slot switches, ms.
    pub next_switch_ms: u64,
}

/// Whether two specs run the same instances: the same name (it names the
/// instances and their network) and the same components. Anything else
/// (instances, description, contacts, placement rules) changes no instance.
pub(crate) fn runs_same(a: &AppSpec, b: &AppSpec) -> bool {
    a.name == b.name && a.components == b.components
}

impl Rollout {
    /// Chain time at which `slot` switches to the app's spec.
    pub fn switch_ms(&self, slot: u32) -> u64 {
        if slot < self.switched_before {
            return self.started_ms;
        }
        // After an update during a rollout, the first slot still on the
        // previous spec waits one interval for the switched ones to restart.
        let rank = u64::from(slot - self.switched_before) + u64::from(self.switched_before > 0);
        self.started_ms
            .saturating_add(rank.saturating_mul(self.interval_ms))
    }

    /// Slots this rollout switches for an app now wanting `instances`: those
    /// the previous spec had too.
    pub fn slots(&self, instances: u32) -> u32 {
        self.previous.instances.min(instances)
    }

    /// Chain time at which the last slot has switched and the rollout ends.
    pub fn finish_ms(&self, instances: u32) -> u64 {
        self.switch_ms(self.slots(instances).saturating_sub(1))
    }

    /// How many slots run the app's spec at `now_ms`: a prefix of the slots,
    /// since switch times grow with the slot.
    fn switched(&self, instances: u32, now_ms: u64) -> u32 {
        let slots = self.slots(instances);
        (0..slots)
            .find(|&slot| self.switch_ms(slot) > now_ms)
            .unwrap_or(slots)
    }
}

/// The rollout an update from `old` to `spec` at `now_ms` leaves in the
/// app's record (see the module's rules).
pub(crate) fn after_update(
    old: &AppRecord,
    spec: &AppSpec,
    now_ms: u64,
    interval_ms: u64,
) -> Option<Rollout> {
    let running = old
        .rollout
        .as_ref()
        .filter(|r| r.switched(old.spec.instances, now_ms) < r.slots(old.spec.instances));
    match running {
        None if runs_same(&old.spec, spec) => None,
        None => Some(Rollout {
            previous: old.spec.clone(),
            started_ms: now_ms,
            interval_ms,
            switched_before: 0,
        }),
        Some(rollout) if runs_same(&old.spec, spec) => Some(rollout.clone()),
        Some(rollout) if runs_same(&rollout.previous, spec) => None,
        Some(rollout) => Some(Rollout {
            previous: rollout.previous.clone(),
            started_ms: now_ms,
            interval_ms,
            switched_before: rollout.switched(old.spec.instances, now_ms),
        }),
    }
}

/// Drops the rollouts whose last slot switched at or before `now_ms`.
pub(crate) fn end_block(state: &mut State, now_ms: u64) {
    for key in state.finished_rollouts(now_ms) {
        let Some(record) = state.apps.get(&key) else {
            continue;
        };
        let record = AppRecord {
            rollout: None,
            ..record.clone()
        };
        state.put_rollout(record);
    }
}

impl State {
    /// The spec instance `slot` of `app` runs now: the previous spec while a
    /// rolling update has not reached the slot, the app's spec otherwise.
    pub fn instance_spec<'a>(&self, app: &'a AppRecord, slot: u32) -> &'a AppSpec {
        match &app.rollout {
            Some(rollout)
                if slot < rollout.slots(app.spec.instances)
                    && self.time_ms() < rollout.switch_ms(slot) =>
            {
                &rollout.previous
            }
            _ => &app.spec,
        }
    }

    /// How far the rolling update of the app `name` (any case) has come;
    /// `None` when none is in progress.
    pub fn rollout_progress(&self, name: &str) -> Option<RolloutProgress> {
        let record = self.apps.get(&app_key(name))?;
        let rollout = record.rollout.as_ref()?;
        let of = rollout.slots(record.spec.instances);
        let updated = rollout.switched(record.spec.instances, self.time_ms());
        (updated < of).then(|| RolloutProgress {
            updated,
            of,
            next_switch_ms: rollout.switch_ms(updated),
        })
    }
}
