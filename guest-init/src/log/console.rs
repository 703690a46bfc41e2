//! The console thread: writes `APP: text` lines, and a notice of lines it had to drop.

use super::channel::Msg;
use super::format::{console_dropped_notice, sanitize_text};
use super::record::INIT_APP;
use std::io::Write;
use std::sync::mpsc::Receiver;

pub(super) struct ConsoleWorker {
    pub(super) out: Box<dyn Write + Send>,
}

impl ConsoleWorker {
    pub(super) fn run(mut self, rx: Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Line {
                    rec,
                    dropped_before,
                } => {
                    self.notice(dropped_before);
                    self.write_line(&rec.app, &rec.text);
                }
                Msg::Flush {
                    dropped_before,
                    ack,
                    ..
                } => {
                    self.notice(dropped_before);
                    let _ = self.out.flush();
                    let _ = ack.send(0);
                }
            }
        }
    }

    fn notice(&mut self, dropped: u64) {
        if dropped > 0 {
            self.write_line(INIT_APP, &console_dropped_notice(dropped));
        }
    }

    /// Writes `APP: text`; errors are ignored because the console is the last resort and
    /// there is nowhere else to report them.
    fn write_line(&mut self, app: &str, text: &str) {
        let line = format!("{app}: {}\n", sanitize_text(text));
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
    }
}
