//! Core's observations as trace events: one mapping, shared by every host
//! of core (the simulator's replica nodes and the live replica processes).

use haywire_core::CoreEvent;
use haywire_traces::EventKind;

/// The trace event for what core reported, or `None` for the reports a
/// host records itself (its start, and leader tasks through the task probe).
pub fn event_kind(e: CoreEvent) -> Option<EventKind> {
    Some(match e {
        // The host records the start itself (the process is up as a new instance).
        CoreEvent::Started { .. } => return None,
        CoreEvent::LeaseAcquired { epoch } => EventKind::LeaseAcquired { epoch },
        CoreEvent::LeaseRenewed { epoch } => EventKind::LeaseRenewed { epoch },
        CoreEvent::SteppedDown { epoch, reason } => EventKind::SteppedDown { epoch, reason },
        CoreEvent::LeaseReleased { epoch } => EventKind::LeaseReleased { epoch },
        CoreEvent::ReleaseFailed { epoch, reason } => EventKind::ReleaseFailed { epoch, reason },
        // The host's task probe records when leader tasks really start
        // and finish; core's own word for it would only repeat that.
        CoreEvent::LoopStarted { .. } | CoreEvent::LoopStopped { .. } => return None,
        CoreEvent::LeaderWorkStopped { epoch } => EventKind::LeaderWorkStopped { epoch },
        CoreEvent::EffectApplied { epoch, seq } => EventKind::EffectApplied { epoch, seq },
        CoreEvent::EffectRejected { epoch, reason } => EventKind::EffectRejected { epoch, reason },
        CoreEvent::EffectUnknown { epoch, error } => EventKind::EffectUnknown { epoch, error },
        CoreEvent::ShutdownBegan => EventKind::ShutdownBegan,
        CoreEvent::ShutdownDone => EventKind::ShutdownDone,
        CoreEvent::HeartbeatFailed { error } => EventKind::HeartbeatFailed { error },
        CoreEvent::Fenced { reason } => EventKind::Fenced { reason },
        CoreEvent::SpawnFailed { worker, reason } => EventKind::SpawnFailed { worker, reason },
        CoreEvent::ReapFailed { reaper, pass, error } => {
            EventKind::ReapFailed { reaper: reaper.into(), pass: pass.into(), error }
        }
        })
}
