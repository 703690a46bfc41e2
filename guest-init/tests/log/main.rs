//! Integration tests of the log sink against real sockets on the loopback interface only
//! (127.0.0.1 and [::1]). Every wait is for an event (a connection, a datagram, a socket
//! state, a counter of the sink) and bounded, so a broken sink fails a test instead of
//! hanging it. How fast the sink is, is measured by `benches/log_sink.rs`, not asserted here.

mod console;
mod outage;
mod support;
mod wire;
