//! A pipe read on a thread until end of file (a VM's console), kept for the test to look at.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Reads a pipe on a thread until EOF.
#[derive(Debug)]
pub(crate) struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
    finished: std::sync::atomic::AtomicBool,
}

impl Capture {
    pub(crate) fn start(pipe: Option<impl Read + Send + 'static>, echo: bool) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&buf);
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    if echo {
                        eprint!("{}", String::from_utf8_lossy(&chunk[..n]));
                    }
                    shared
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            }
            let _ = tx.send(());
        });
        Capture {
            buf,
            done,
            finished: Default::default(),
        }
    }

    /// The text read so far.
    pub(crate) fn snapshot(&self) -> String {
        let bytes = self.buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }

    /// Whether the pipe reached EOF.
    pub(crate) fn is_done(&self) -> bool {
        if self.finished.load(Ordering::Relaxed) {
            return true;
        }
        let done = !matches!(self.done.try_recv(), Err(mpsc::TryRecvError::Empty));
        if done {
            self.finished.store(true, Ordering::Relaxed);
        }
        done
    }

    /// The text read so far, waiting up to 5 s for EOF (a process that escaped the process
    /// group could keep the pipe open).
    pub(crate) fn finish(&self) -> String {
        if !self.finished.load(Ordering::Relaxed) {
            let _ = self.done.recv_timeout(Duration::from_secs(5));
            self.finished.store(true, Ordering::Relaxed);
        }
        self.snapshot()
    }
}
