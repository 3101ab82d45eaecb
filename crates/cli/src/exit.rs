//! Exit codes and hints of the command line. Both come from the
//! [`ErrorCode`] the error in the chain names, the same code that decides
//! the service's HTTP status and hint, so the local command line, the
//! service and the remote command line answer one error one way.

use coffer_api_types::{Audience, ErrorCode};

pub use coffer_api_types::exit::{DAMAGED, ERROR, PARTIAL};

pub struct Code(pub u8);

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c.0)
    }
}

/// The code an error chain names: the first engine or service error in it.
/// A chain without one (a local file the command line itself read) has none.
pub fn code_of(err: &anyhow::Error) -> Option<ErrorCode> {
    err.chain().find_map(|e| {
        e.downcast_ref::<coffer_engine::Error>()
            .map(coffer_engine::Error::code)
            .or_else(|| e.downcast_ref::<coffer_server::Error>().map(|e| e.code()))
            .or_else(|| e.downcast_ref::<coffer_agent::Error>().map(|e| e.code()))
    })
}

/// The exit code and hint for an error chain.
pub fn classify(err: &anyhow::Error) -> (Code, Option<&'static str>) {
    match code_of(err) {
        Some(code) => (
            Code(code.exit_code()),
            Some(code.hint(Audience::CommandLine)),
        ),
        None => (Code(ERROR), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_api_types::exit;

    #[test]
    fn an_engine_error_exits_with_its_codes_exit_code_and_hint() {
        let cases = [
            coffer_engine::Error::WrongKey { slots: 2 },
            coffer_engine::Error::PointNotFound("abc".into()),
            coffer_engine::Error::Missing {
                object: "packs/00/x".into(),
            },
            coffer_engine::Error::Invalid("bad pattern".into()),
        ];
        for e in cases {
            let code = e.code();
            let err = anyhow::Error::new(e).context("while doing something");
            let (exit_code, hint) = classify(&err);
            assert_eq!(exit_code.0, code.exit_code(), "{code:?}");
            assert_eq!(hint, Some(code.hint(Audience::CommandLine)), "{code:?}");
        }
        let (wrong_key, _) = classify(&anyhow::Error::new(coffer_engine::Error::WrongKey {
            slots: 1,
        }));
        assert_eq!(wrong_key.0, exit::WRONG_KEY);
    }

    #[test]
    fn a_service_error_wrapping_an_engine_error_answers_like_the_engine_error() {
        let err = anyhow::Error::new(coffer_server::Error::Engine(
            coffer_engine::Error::AmbiguousPoint {
                prefix: "ab".into(),
                count: 2,
            },
        ));
        let (exit_code, hint) = classify(&err);
        assert_eq!(exit_code.0, exit::NOT_FOUND);
        assert_eq!(
            hint,
            Some(ErrorCode::AmbiguousPoint.hint(Audience::CommandLine))
        );
    }

    #[test]
    fn an_error_of_no_known_kind_is_a_general_error_without_hint() {
        let (exit_code, hint) = classify(&anyhow::anyhow!("reading the spec file failed"));
        assert_eq!(exit_code.0, exit::ERROR);
        assert_eq!(hint, None);
    }
}
