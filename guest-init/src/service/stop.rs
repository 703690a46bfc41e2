//! The stop signal of the service.

use contract::names::signal_number;
use contract::Service;
use nix::sys::signal::Signal;

/// The signal that asks the service to stop. The contract is validated, so an unknown name
/// cannot normally happen; should it anyway, SIGTERM is the conventional request.
pub fn stop_signal(svc: &Service) -> Signal {
    signal_number(&svc.stop_signal)
        .and_then(|n| Signal::try_from(n).ok())
        .unwrap_or(Signal::SIGTERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: &str) -> Service {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stop_signal_from_contract_names() {
        let mut s = service(r#"{"argv": ["/bin/true"]}"#);
        assert_eq!(stop_signal(&s), Signal::SIGTERM);
        s.stop_signal = "SIGQUIT".into();
        assert_eq!(stop_signal(&s), Signal::SIGQUIT);
        s.stop_signal = "int".into();
        assert_eq!(stop_signal(&s), Signal::SIGINT);
        s.stop_signal = "SIGBOGUS".into();
        assert_eq!(stop_signal(&s), Signal::SIGTERM);
    }
}
