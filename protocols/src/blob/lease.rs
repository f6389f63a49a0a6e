//! The Azure lease state machine for blobs and containers, as pure functions over a
//! [`Lease`] value that the store persists with the blob or container record. The store calls
//! [`Lease::check_write`] (and [`Lease::check_read`]) atomically with every operation, and
//! [`Lease::apply`] for Lease Blob / Lease Container requests.

use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::error::BlobError;

/// A persisted lease. `Default` is "never leased".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    /// The lease id while leased, breaking or expired (kept so renew after expiry works).
    pub id: Option<String>,
    /// When the lease (or the break period) ends; `None` for an infinite lease.
    pub until: Option<SystemTime>,
    /// True while a break is in progress or done.
    pub broken: bool,
    /// The duration the lease was acquired with, in seconds (-1 = infinite).
    pub duration_secs: i64,
}

/// What a lease looks like at one instant (`x-ms-lease-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Never leased, or released.
    Available,
    /// Leased and not expired.
    Leased,
    /// The lease ran out without being released.
    Expired,
    /// A break is running.
    Breaking,
    /// A break ran out.
    Broken,
}

impl LeaseState {
    /// The `x-ms-lease-state` value.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Available => "available",
            LeaseState::Leased => "leased",
            LeaseState::Expired => "expired",
            LeaseState::Breaking => "breaking",
            LeaseState::Broken => "broken",
        }
    }

    /// The `x-ms-lease-status` value: `locked` while leased or breaking.
    pub fn status(self) -> &'static str {
        match self {
            LeaseState::Leased | LeaseState::Breaking => "locked",
            _ => "unlocked",
        }
    }
}

/// A Lease request (`x-ms-lease-action` and its headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// Acquire for `duration_secs` (15–60, or -1 = infinite), with an optional proposed id.
    Acquire {
        /// Seconds, or -1.
        duration_secs: i64,
        /// `x-ms-proposed-lease-id`.
        proposed_id: Option<String>,
    },
    /// Renew the lease `id`.
    Renew {
        /// `x-ms-lease-id`.
        id: String,
    },
    /// Change the lease `id` to `proposed_id`.
    Change {
        /// `x-ms-lease-id`.
        id: String,
        /// `x-ms-proposed-lease-id`.
        proposed_id: String,
    },
    /// Release the lease `id`.
    Release {
        /// `x-ms-lease-id`.
        id: String,
    },
    /// Break the lease after `period_secs` (0–60; `None` = the rest of the lease).
    Break {
        /// `x-ms-lease-break-period`.
        period_secs: Option<i64>,
    },
}

/// What a lease request returns (`x-ms-lease-id`, `x-ms-lease-time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// The lease id, for acquire / renew / change.
    pub id: Option<String>,
    /// Seconds left in the break, for break.
    pub time_secs: Option<u64>,
}

fn conflict(code: &'static str, message: &str) -> BlobError {
    BlobError::new(StatusCode::CONFLICT, code, message)
}

fn precondition(code: &'static str, message: &str) -> BlobError {
    BlobError::new(StatusCode::PRECONDITION_FAILED, code, message)
}

impl Lease {
    /// The state at `now`.
    pub fn state(&self, now: SystemTime) -> LeaseState {
        if self.id.is_none() && !self.broken {
            return LeaseState::Available;
        }
        let running = self.until.is_none_or(|t| now < t);
        match (self.broken, running) {
            (true, true) => LeaseState::Breaking,
            (true, false) => LeaseState::Broken,
            (false, true) => LeaseState::Leased,
            (false, false) => LeaseState::Expired,
        }
    }

    /// `x-ms-lease-duration` while leased: `infinite` or `fixed`.
    pub fn duration_name(&self, now: SystemTime) -> Option<&'static str> {
        let name = if self.duration_secs < 0 {
            "infinite"
        } else {
            "fixed"
        };
        (self.state(now) == LeaseState::Leased).then_some(name)
    }

    fn active_id(&self, now: SystemTime) -> Option<&str> {
        match self.state(now) {
            LeaseState::Leased | LeaseState::Breaking => self.id.as_deref(),
            _ => None,
        }
    }

    /// Checks a content, property, metadata or delete write that carried `lease_id`.
    pub fn check_write(
        &self,
        lease_id: Option<&str>,
        now: SystemTime,
        blob: bool,
    ) -> Result<(), BlobError> {
        let what = if blob { "blob" } else { "container" };
        match (self.active_id(now), lease_id) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(precondition(
                "LeaseIdMissing",
                &format!("There is currently a lease on the {what} and no lease ID was specified in the request."),
            )),
            (Some(active), Some(sent)) if active.eq_ignore_ascii_case(sent) => Ok(()),
            (Some(_), Some(_)) => Err(precondition(
                if blob { "LeaseIdMismatchWithBlobOperation" } else { "LeaseIdMismatchWithContainerOperation" },
                &format!("The lease ID specified did not match the lease ID for the {what}."),
            )),
            (None, Some(_)) => Err(precondition(
                if blob { "LeaseNotPresentWithBlobOperation" } else { "LeaseNotPresentWithContainerOperation" },
                &format!("There is currently no lease on the {what}."),
            )),
        }
    }

    /// Checks a read that carried `lease_id` (a read without one is always allowed).
    pub fn check_read(
        &self,
        lease_id: Option<&str>,
        now: SystemTime,
        blob: bool,
    ) -> Result<(), BlobError> {
        match lease_id {
            None => Ok(()),
            some => self.check_write(some, now, blob),
        }
    }

    /// Applies a lease request at `now`, returning the new lease and the response values.
    /// `new_id` supplies a fresh lease id when an acquire proposes none.
    pub fn apply(
        &self,
        action: &LeaseAction,
        now: SystemTime,
        new_id: impl FnOnce() -> String,
    ) -> Result<(Lease, LeaseOutcome), BlobError> {
        let state = self.state(now);
        let same = |id: &str| {
            self.id
                .as_deref()
                .is_some_and(|cur| cur.eq_ignore_ascii_case(id))
        };
        match action {
            LeaseAction::Acquire {
                duration_secs,
                proposed_id,
            } => {
                if !(*duration_secs == -1 || (15..=60).contains(duration_secs)) {
                    return Err(BlobError::invalid_header(
                        "x-ms-lease-duration",
                        "must be -1 or between 15 and 60 seconds",
                    ));
                }
                match state {
                    // Re-acquiring with the active id is allowed (and renews it).
                    LeaseState::Leased if !proposed_id.as_deref().is_some_and(same) => {
                        return Err(conflict(
                            "LeaseAlreadyPresent",
                            "There is already a lease present.",
                        ));
                    }
                    LeaseState::Breaking => {
                        return Err(conflict(
                            "LeaseIsBreakingAndCannotBeAcquired",
                            "There is already a breaking lease present.",
                        ))
                    }
                    _ => {}
                }
                let id = proposed_id.clone().unwrap_or_else(new_id);
                let lease = Lease {
                    id: Some(id.clone()),
                    until: until(now, *duration_secs),
                    broken: false,
                    duration_secs: *duration_secs,
                };
                Ok((
                    lease,
                    LeaseOutcome {
                        id: Some(id),
                        time_secs: None,
                    },
                ))
            }
            LeaseAction::Renew { id } => {
                if !same(id) || state == LeaseState::Available {
                    return Err(conflict(
                        "LeaseIdMismatchWithLeaseOperation",
                        "The lease ID specified did not match the lease ID for the blob.",
                    ));
                }
                if matches!(state, LeaseState::Breaking | LeaseState::Broken) {
                    return Err(conflict(
                        "LeaseIsBrokenAndCannotBeRenewed",
                        "The lease ID matched, but the lease has been broken explicitly and cannot be renewed.",
                    ));
                }
                let lease = Lease {
                    until: until(now, self.duration_secs),
                    ..self.clone()
                };
                Ok((
                    lease,
                    LeaseOutcome {
                        id: Some(id.clone()),
                        time_secs: None,
                    },
                ))
            }
            LeaseAction::Change { id, proposed_id } => {
                let allowed = match state {
                    LeaseState::Leased => same(id) || same(proposed_id),
                    _ => false,
                };
                if !allowed {
                    let code = match state {
                        LeaseState::Leased => "LeaseIdMismatchWithLeaseOperation",
                        LeaseState::Breaking | LeaseState::Broken => {
                            "LeaseIsBrokenAndCannotBeModified"
                        }
                        _ => "LeaseNotPresentWithLeaseOperation",
                    };
                    return Err(conflict(
                        code,
                        "The lease cannot be changed in its current state.",
                    ));
                }
                let lease = Lease {
                    id: Some(proposed_id.clone()),
                    ..self.clone()
                };
                Ok((
                    lease,
                    LeaseOutcome {
                        id: Some(proposed_id.clone()),
                        time_secs: None,
                    },
                ))
            }
            LeaseAction::Release { id } => {
                if state == LeaseState::Available || !same(id) {
                    return Err(conflict(
                        "LeaseIdMismatchWithLeaseOperation",
                        "The lease ID specified did not match the lease ID for the blob.",
                    ));
                }
                Ok((
                    Lease::default(),
                    LeaseOutcome {
                        id: None,
                        time_secs: None,
                    },
                ))
            }
            LeaseAction::Break { period_secs } => {
                if let Some(p) = period_secs {
                    if !(0..=60).contains(p) {
                        return Err(BlobError::invalid_header(
                            "x-ms-lease-break-period",
                            "must be between 0 and 60 seconds",
                        ));
                    }
                }
                match state {
                    LeaseState::Available => Err(conflict(
                        "LeaseNotPresentWithLeaseOperation",
                        "There is currently no lease on the blob.",
                    )),
                    LeaseState::Expired | LeaseState::Broken => {
                        let lease = Lease {
                            broken: true,
                            until: Some(now),
                            ..self.clone()
                        };
                        Ok((
                            lease,
                            LeaseOutcome {
                                id: None,
                                time_secs: Some(0),
                            },
                        ))
                    }
                    LeaseState::Breaking => {
                        let left = self
                            .until
                            .map_or(0, |t| t.duration_since(now).map_or(0, |d| d.as_secs()));
                        let left = period_secs.map_or(left, |p| left.min(p as u64));
                        let lease = Lease {
                            until: Some(now + Duration::from_secs(left)),
                            ..self.clone()
                        };
                        Ok((
                            lease,
                            LeaseOutcome {
                                id: None,
                                time_secs: Some(left),
                            },
                        ))
                    }
                    LeaseState::Leased => {
                        let remaining = match self.until {
                            None => 0,
                            Some(t) => t.duration_since(now).map_or(0, |d| d.as_secs()),
                        };
                        let left = match (period_secs, self.until) {
                            (Some(p), None) => *p as u64,
                            (Some(p), Some(_)) => remaining.min(*p as u64),
                            (None, _) => remaining,
                        };
                        let lease = Lease {
                            broken: true,
                            until: Some(now + Duration::from_secs(left)),
                            ..self.clone()
                        };
                        Ok((
                            lease,
                            LeaseOutcome {
                                id: None,
                                time_secs: Some(left),
                            },
                        ))
                    }
                }
            }
        }
    }
}

fn until(now: SystemTime, duration_secs: i64) -> Option<SystemTime> {
    (duration_secs >= 0).then(|| now + Duration::from_secs(duration_secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn acquire(d: i64, id: &str) -> LeaseAction {
        LeaseAction::Acquire {
            duration_secs: d,
            proposed_id: Some(id.into()),
        }
    }

    #[test]
    fn acquire_guards_writes_until_expiry() {
        let (l, out) = Lease::default()
            .apply(&acquire(15, "L1"), t(0), || unreachable!())
            .unwrap();
        assert_eq!(out.id.as_deref(), Some("L1"));
        assert_eq!(l.state(t(5)), LeaseState::Leased);
        assert_eq!(
            l.check_write(None, t(5), true).unwrap_err().code,
            "LeaseIdMissing"
        );
        assert_eq!(
            l.check_write(Some("L2"), t(5), true).unwrap_err().code,
            "LeaseIdMismatchWithBlobOperation"
        );
        l.check_write(Some("l1"), t(5), true).unwrap();
        l.check_read(None, t(5), true).unwrap();
        // After expiry writes go through again, and a new acquire succeeds.
        assert_eq!(l.state(t(16)), LeaseState::Expired);
        l.check_write(None, t(16), true).unwrap();
        assert!(l
            .apply(&acquire(15, "L2"), t(16), || unreachable!())
            .is_ok());
        assert_eq!(
            l.apply(&acquire(15, "L2"), t(5), || unreachable!())
                .unwrap_err()
                .code,
            "LeaseAlreadyPresent"
        );
    }

    #[test]
    fn renew_change_release() {
        let (l, _) = Lease::default()
            .apply(&acquire(-1, "A"), t(0), || unreachable!())
            .unwrap();
        assert_eq!(l.duration_name(t(1000)), Some("infinite"));
        let (l, _) = l
            .apply(
                &LeaseAction::Renew { id: "A".into() },
                t(1),
                || unreachable!(),
            )
            .unwrap();
        let (l, out) = l
            .apply(
                &LeaseAction::Change {
                    id: "A".into(),
                    proposed_id: "B".into(),
                },
                t(2),
                || unreachable!(),
            )
            .unwrap();
        assert_eq!(out.id.as_deref(), Some("B"));
        assert!(l
            .apply(
                &LeaseAction::Release { id: "A".into() },
                t(3),
                || unreachable!()
            )
            .is_err());
        let (l, _) = l
            .apply(
                &LeaseAction::Release { id: "B".into() },
                t(3),
                || unreachable!(),
            )
            .unwrap();
        assert_eq!(l.state(t(3)), LeaseState::Available);
        assert_eq!(
            l.check_write(Some("B"), t(3), true).unwrap_err().code,
            "LeaseNotPresentWithBlobOperation"
        );
    }

    #[test]
    fn break_runs_out() {
        let (l, _) = Lease::default()
            .apply(&acquire(60, "A"), t(0), || unreachable!())
            .unwrap();
        let (l, out) = l
            .apply(
                &LeaseAction::Break {
                    period_secs: Some(10),
                },
                t(0),
                || unreachable!(),
            )
            .unwrap();
        assert_eq!(out.time_secs, Some(10));
        assert_eq!(l.state(t(5)), LeaseState::Breaking);
        assert_eq!(
            l.check_write(None, t(5), true).unwrap_err().code,
            "LeaseIdMissing"
        );
        assert_eq!(
            l.apply(
                &LeaseAction::Renew { id: "A".into() },
                t(5),
                || unreachable!()
            )
            .unwrap_err()
            .code,
            "LeaseIsBrokenAndCannotBeRenewed"
        );
        assert_eq!(l.state(t(11)), LeaseState::Broken);
        l.check_write(None, t(11), true).unwrap();
        let (l, out) = l
            .apply(
                &LeaseAction::Acquire {
                    duration_secs: 15,
                    proposed_id: None,
                },
                t(12),
                || "fresh".into(),
            )
            .unwrap();
        assert_eq!(out.id.as_deref(), Some("fresh"));
        assert_eq!(l.state(t(12)), LeaseState::Leased);
    }

    #[test]
    fn rejects_bad_durations() {
        for d in [0, 14, 61, -2] {
            assert!(Lease::default()
                .apply(&acquire(d, "A"), t(0), || unreachable!())
                .is_err());
        }
        assert!(Lease::default()
            .apply(
                &LeaseAction::Break {
                    period_secs: Some(61)
                },
                t(0),
                || unreachable!()
            )
            .is_err());
    }
}
