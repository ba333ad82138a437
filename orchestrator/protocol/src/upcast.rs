//! Reading events written by older builds: upcasters, one schema step at a time.
//!
//! Every stored event carries its type and the schema version of that type it was written
//! with. A log's [`Schema`] names each type's newest version and the upcasters between
//! versions; reading an event runs the upcasters from its stored version up to the newest,
//! so the decoder only ever sees the newest shape. Writing always uses the newest version.
//! A stored row is never rewritten: history stays as it was written, and is read as it is
//! understood today.
//!
//! An upcaster is a pure function of the old payload and of what the store knows about the
//! row ([`Stored`]: when it was recorded), so an upcast can fill a new field from the row
//! (an account entry recorded before it carried the command's time is read as having
//! happened when it was booked).
//!
//! ```
//! use saga_protocol::upcast::{Schema, Stored, Upcaster};
//! use saga_protocol::Timestamp;
//! use serde_json::{json, Map, Value};
//!
//! fn rename_who(mut payload: Map<String, Value>, _: &Stored) -> Result<Map<String, Value>, String> {
//!     let who = payload.remove("who").ok_or("no `who`")?;
//!     payload.insert("by".into(), who);
//!     Ok(payload)
//! }
//! static SCHEMA: Schema = Schema {
//!     log: "example",
//!     newest: &[("Approved", 2)],
//!     upcasters: &[Upcaster { event_type: "Approved", from: 1, change: "`who` is `by`", apply: rename_who }],
//! };
//! let stored = Stored { recorded_at: Timestamp(0) };
//! let read = SCHEMA.upcast("Approved", 1, json!({"who": "ana"}), &stored)?;
//! assert_eq!(read, json!({"by": "ana"}));
//! assert_eq!(SCHEMA.version_of("Approved"), 2);
//! assert_eq!(SCHEMA.version_of("Opened"), 1);
//! assert!(SCHEMA.upcast("Approved", 3, json!({}), &stored).is_err(), "newer than this build");
//! # Ok::<(), saga_protocol::upcast::UpcastError>(())
//! ```

use crate::Timestamp;
use serde_json::{Map, Value};

/// What the store knows about a row besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// When the row was written (the store's clock).
    pub recorded_at: Timestamp,
}

/// The function of one step: the payload at version `from`, returned at `from + 1`.
pub type Step = fn(Map<String, Value>, &Stored) -> Result<Map<String, Value>, String>;

/// One step of one event type's schema.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub event_type: &'static str,
    /// The version it reads; it returns version `from + 1`.
    pub from: u32,
    /// What changed, in a few words (for the docs and for error messages).
    pub change: &'static str,
    pub apply: Step,
}

/// The schema of one log: the newest version of each type, and the upcasters up to it.
#[derive(Debug)]
pub struct Schema {
    /// Whose events these are (`saga`, `account`, `order`), for error messages.
    pub log: &'static str,
    /// Types whose newest version is above 1; every other type is at version 1.
    pub newest: &'static [(&'static str, u32)],
    pub upcasters: &'static [Upcaster],
}

/// Why a stored event cannot be read as the newest version of its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error(
        "{log} event {event_type} has schema version {version}, newer than this build reads \
         (up to {newest}): it was written by a newer build"
    )]
    Newer {
        log: &'static str,
        event_type: String,
        version: u32,
        newest: u32,
    },
    #[error("{log} event {event_type} has schema version {version}, which no build writes")]
    Invalid {
        log: &'static str,
        event_type: String,
        version: u32,
    },
    #[error("{log} event {event_type} has no upcaster from version {from}")]
    Missing {
        log: &'static str,
        event_type: String,
        from: u32,
    },
    #[error(
        "{log} event {event_type} at schema version {from} cannot be upcast ({change}): {reason}"
    )]
    Failed {
        log: &'static str,
        event_type: String,
        from: u32,
        change: &'static str,
        reason: String,
    },
}

impl Schema {
    /// The version this build writes `event_type` with.
    pub fn version_of(&self, event_type: &str) -> u32 {
        self.newest
            .iter()
            .find(|(t, _)| *t == event_type)
            .map_or(1, |(_, v)| *v)
    }

    /// The payload of `event_type` stored at `version`, as the newest version reads it.
    /// A payload at the newest version is returned as it is.
    pub fn upcast(
        &self,
        event_type: &str,
        version: u32,
        payload: Value,
        stored: &Stored,
    ) -> Result<Value, UpcastError> {
        let newest = self.version_of(event_type);
        if version == newest {
            return Ok(payload);
        }
        if version == 0 {
            return Err(UpcastError::Invalid {
                log: self.log,
                event_type: event_type.to_string(),
                version,
            });
        }
        if version > newest {
            return Err(UpcastError::Newer {
                log: self.log,
                event_type: event_type.to_string(),
                version,
                newest,
            });
        }
        let mut fields = match payload {
            Value::Object(fields) => fields,
            // A fieldless event (`SagaCompleted`) may be stored as null.
            _ => Map::new(),
        };
        for from in version..newest {
            let step = self
                .upcasters
                .iter()
                .find(|u| u.event_type == event_type && u.from == from)
                .ok_or_else(|| UpcastError::Missing {
                    log: self.log,
                    event_type: event_type.to_string(),
                    from,
                })?;
            fields = (step.apply)(fields, stored).map_err(|reason| UpcastError::Failed {
                log: self.log,
                event_type: event_type.to_string(),
                from,
                change: step.change,
                reason,
            })?;
        }
        Ok(Value::Object(fields))
    }

    /// Every problem of the schema itself: a type whose chain of upcasters has a gap, a step
    /// given twice, a step of a type or a version the schema does not have. Empty when sound;
    /// each log's tests assert it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (event_type, newest) in self.newest {
            if *newest < 2 {
                problems.push(format!(
                    "{event_type}: list only types above version 1 (it says {newest})"
                ));
            }
            for from in 1..*newest {
                let steps = self
                    .upcasters
                    .iter()
                    .filter(|u| u.event_type == *event_type && u.from == from)
                    .count();
                if steps != 1 {
                    problems.push(format!(
                        "{event_type}: {steps} upcasters from version {from}, not 1"
                    ));
                }
            }
        }
        for u in self.upcasters {
            if u.from == 0 || u.from >= self.version_of(u.event_type) {
                problems.push(format!(
                    "{}: an upcaster from version {} is past its newest version {}",
                    u.event_type,
                    u.from,
                    self.version_of(u.event_type)
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn add_note(mut p: Map<String, Value>, s: &Stored) -> Result<Map<String, Value>, String> {
        p.insert("note".into(), json!(s.recorded_at.0));
        Ok(p)
    }

    fn rename(mut p: Map<String, Value>, _: &Stored) -> Result<Map<String, Value>, String> {
        let note = p.remove("note").ok_or("no `note`")?;
        p.insert("remark".into(), note);
        Ok(p)
    }

    static CHAIN: Schema = Schema {
        log: "test",
        newest: &[("Noted", 3)],
        upcasters: &[
            Upcaster {
                event_type: "Noted",
                from: 2,
                change: "`note` is `remark`",
                apply: rename,
            },
            Upcaster {
                event_type: "Noted",
                from: 1,
                change: "a note, from the row",
                apply: add_note,
            },
        ],
    };

    #[test]
    fn steps_run_in_version_order_from_the_stored_version() {
        let stored = Stored {
            recorded_at: Timestamp(7),
        };
        let v1 = CHAIN.upcast("Noted", 1, json!({"a": 1}), &stored).unwrap();
        assert_eq!(v1, json!({"a": 1, "remark": 7}));
        let v2 = CHAIN
            .upcast("Noted", 2, json!({"note": 3}), &stored)
            .unwrap();
        assert_eq!(v2, json!({"remark": 3}));
        let v3 = CHAIN
            .upcast("Noted", 3, json!({"remark": 9}), &stored)
            .unwrap();
        assert_eq!(v3, json!({"remark": 9}));
        assert!(CHAIN.problems().is_empty(), "{:?}", CHAIN.problems());
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        let stored = Stored {
            recorded_at: Timestamp(0),
        };
        let errors: Vec<String> = [
            CHAIN.upcast("Noted", 4, json!({}), &stored),
            CHAIN.upcast("Noted", 0, json!({}), &stored),
            CHAIN.upcast("Noted", 2, json!({}), &stored),
            CHAIN.upcast("Other", 2, json!({}), &stored),
        ]
        .into_iter()
        .map(|r| r.unwrap_err().to_string())
        .collect();
        assert_eq!(
            errors,
            [
                "test event Noted has schema version 4, newer than this build reads (up to 3): it was written by a newer build",
                "test event Noted has schema version 0, which no build writes",
                "test event Noted at schema version 2 cannot be upcast (`note` is `remark`): no `note`",
                "test event Other has schema version 2, newer than this build reads (up to 1): it was written by a newer build",
            ]
        );
    }

    #[test]
    fn a_gap_or_a_stray_step_is_a_problem_of_the_schema() {
        static GAP: Schema = Schema {
            log: "test",
            newest: &[("Noted", 3), ("Flat", 1)],
            upcasters: &[
                Upcaster {
                    event_type: "Noted",
                    from: 2,
                    change: "",
                    apply: rename,
                },
                Upcaster {
                    event_type: "Gone",
                    from: 1,
                    change: "",
                    apply: rename,
                },
            ],
        };
        assert_eq!(
            GAP.problems(),
            [
                "Noted: 0 upcasters from version 1, not 1",
                "Flat: list only types above version 1 (it says 1)",
                "Gone: an upcaster from version 1 is past its newest version 1",
            ]
        );
    }
}
