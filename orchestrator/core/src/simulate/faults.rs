//! The faults a simulated world injects, and how `--faults` names them.

use std::collections::BTreeSet;
use std::fmt;

/// A kind of fault the world injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// A message never arrives.
    Lose,
    /// A message arrives twice.
    Duplicate,
    /// A message overtakes others.
    Reorder,
    /// A message arrives late, up to twice its step's timeout; time moves on meanwhile.
    Delay,
    /// The orchestrator crashes before an append, or between an append and its publish.
    Crash,
    /// A participant refuses a command (or, more rarely, a compensation).
    Refuse,
    /// A participant answers a transient failure.
    Fail,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Lose,
        Fault::Duplicate,
        Fault::Reorder,
        Fault::Delay,
        Fault::Crash,
        Fault::Refuse,
        Fault::Fail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Lose => "lose",
            Fault::Duplicate => "duplicate",
            Fault::Reorder => "reorder",
            Fault::Delay => "delay",
            Fault::Crash => "crash",
            Fault::Refuse => "refuse",
            Fault::Fail => "fail",
        }
    }
}

/// The faults a simulation injects; all of them unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults(BTreeSet<Fault>);

impl Default for Faults {
    fn default() -> Self {
        Faults(Fault::ALL.into_iter().collect())
    }
}

impl Faults {
    pub fn none() -> Self {
        Faults(BTreeSet::new())
    }

    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|x| x.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for Faults {
    type Err = String;

    /// `all`, `none`, or names separated by commas: `lose,duplicate,delay`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut faults = BTreeSet::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => faults.extend(Fault::ALL),
                "none" => {}
                _ => {
                    let fault = Fault::ALL.into_iter().find(|f| f.name() == name);
                    let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                    faults.insert(fault.ok_or_else(|| {
                        format!(
                            "unknown fault `{name}`: expected all, none or some of {}",
                            names.join(", ")
                        )
                    })?);
                }
            }
        }
        Ok(Faults(faults))
    }
}
