//! The model of the chaos tests' operations on one job: absent, or present
//! with the value of the last registration.

use super::{Model, Unknown};
use crate::history::{JobInput, JobOutput, Op};

/// Jobs registered with a value, deregistered, and read.
///
/// - `Register(v)` makes the job present with `v`; it returns `Ok`.
/// - `Deregister` makes it absent; `Ok` is accepted whether or not it
///   existed (deregistering is idempotent in wren, as in Nomad), while
///   `NotFound` is only possible when it was absent.
/// - `Read` returns `Absent` or `Present(v)` with the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jobs;

impl Model for Jobs {
    type State = Option<u64>;
    type Input = JobInput;
    type Output = JobOutput;

    fn init(&self) -> Option<u64> {
        None
    }

    fn step(
        &self,
        state: &Option<u64>,
        input: &JobInput,
        output: Option<&JobOutput>,
    ) -> Option<Option<u64>> {
        match (input, output) {
            (JobInput::Register(v), None | Some(JobOutput::Ok)) => Some(Some(*v)),
            (JobInput::Deregister, None | Some(JobOutput::Ok)) => Some(None),
            (JobInput::Deregister, Some(JobOutput::NotFound)) => state.is_none().then_some(None),
            (JobInput::Read, None) => Some(*state),
            (JobInput::Read, Some(JobOutput::Absent)) => state.is_none().then_some(None),
            (JobInput::Read, Some(JobOutput::Present(v))) => (*state == Some(*v)).then_some(*state),
            _ => None,
        }
    }

    /// Reads are dropped. A registration's value is unique, so one whose
    /// value nobody read is dropped too (it can only have overwritten a
    /// state nobody looked at before the next write), and one whose value
    /// was read took effect before the first such read returned. Values
    /// written twice on a key get no such shortcut.
    fn unknown(
        &self,
        op: &Op<JobInput, JobOutput>,
        key_ops: &[&Op<JobInput, JobOutput>],
    ) -> Unknown {
        match op.input {
            JobInput::Read => Unknown::Drop,
            JobInput::Deregister => Unknown::Keep,
            JobInput::Register(v) => {
                let seen = key_ops
                    .iter()
                    .filter(|o| o.output() == Some(&JobOutput::Present(v)))
                    .map(|o| o.ret())
                    .min();
                let writers = key_ops
                    .iter()
                    .filter(|o| o.input == JobInput::Register(v))
                    .count();
                match seen {
                    None => Unknown::Drop,
                    Some(t) if writers == 1 => Unknown::TookEffectBy(t),
                    Some(_) => Unknown::Keep,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let m = Jobs;
        let ok = Some(&JobOutput::Ok);
        assert_eq!(m.step(&None, &JobInput::Register(3), ok), Some(Some(3)));
        assert_eq!(
            m.step(&None, &JobInput::Register(3), Some(&JobOutput::Absent)),
            None
        );
        assert_eq!(m.step(&Some(3), &JobInput::Deregister, ok), Some(None));
        assert_eq!(m.step(&None, &JobInput::Deregister, ok), Some(None));
        assert_eq!(
            m.step(&Some(3), &JobInput::Deregister, Some(&JobOutput::NotFound)),
            None
        );
        assert_eq!(
            m.step(&None, &JobInput::Deregister, Some(&JobOutput::NotFound)),
            Some(None)
        );
        assert_eq!(
            m.step(&Some(3), &JobInput::Read, Some(&JobOutput::Present(3))),
            Some(Some(3))
        );
        assert_eq!(
            m.step(&Some(3), &JobInput::Read, Some(&JobOutput::Present(4))),
            None
        );
        assert_eq!(
            m.step(&Some(3), &JobInput::Read, Some(&JobOutput::Absent)),
            None
        );
        assert_eq!(
            m.step(&None, &JobInput::Read, Some(&JobOutput::Absent)),
            Some(None)
        );
        assert_eq!(m.step(&Some(3), &JobInput::Read, None), Some(Some(3)));
        assert_eq!(m.step(&None, &JobInput::Register(5), None), Some(Some(5)));
    }
}
