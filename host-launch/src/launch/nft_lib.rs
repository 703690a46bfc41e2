//! nftables scripts through libnftables (Debian's `libnftables1`, which `nft` itself is built
//! on) inside the launcher, loaded at run time, rather than an `nft` process per script.
//!
//! Why: a start paid 12–24 ms for `nft -f` (of 43 to the guest kernel), and most of it was
//! not nft's work: exec and dynamic loading (~5 ms), and the close of its netlink socket at
//! exit, which waits for nf_tables to destroy the committed transaction after an RCU grace
//! period (3–15 ms measured on 2 busy cores: `strace -T` shows `close` of the socket). Here
//! the script runs in this process, the result is known when the library returns, and the
//! context (its socket) is freed on a thread of its own, so nobody waits for that grace period.
//!
//! When the library cannot be loaded, [`run`] says so and the caller runs `nft`.

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

/// The library's soname (Debian 12's libnftables1).
const SONAME: &str = "libnftables.so.1";

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxBuffer = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxGetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunBuffer = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The functions of libnftables' API (`libnftables(3)`) that a script needs, and the library
/// that holds them (in a static: it stays loaded for the process's life).
struct Lib {
    _library: Library,
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxBuffer,
    buffer_error: CtxBuffer,
    get_error: CtxGetBuffer,
    run_buffer: RunBuffer,
}

fn lib() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(load).as_ref()
}

/// Loads the library and its symbols; `None` when it or one of them is missing.
fn load() -> Option<Lib> {
    // SAFETY: loading libnftables runs its initialisers, which have no preconditions.
    let library = unsafe { Library::open(Some(SONAME), RTLD_NOW | RTLD_LOCAL) }.ok()?;
    Some(Lib {
        ctx_new: symbol(&library, b"nft_ctx_new\0")?,
        ctx_free: symbol(&library, b"nft_ctx_free\0")?,
        buffer_output: symbol(&library, b"nft_ctx_buffer_output\0")?,
        buffer_error: symbol(&library, b"nft_ctx_buffer_error\0")?,
        get_error: symbol(&library, b"nft_ctx_get_error_buffer\0")?,
        run_buffer: symbol(&library, b"nft_run_cmd_from_buffer\0")?,
        _library: library,
    })
}

/// The function `name` of `library`, typed as the caller asks.
fn symbol<T: Copy>(library: &Library, name: &[u8]) -> Option<T> {
    // SAFETY: each caller names the type libnftables(3) gives the function; the pointer is
    // used only while the library is loaded (it is kept in the same `Lib`, in a static).
    unsafe { library.get::<T>(name) }.ok().map(|f| *f)
}

/// A context handed to the thread that frees it.
struct Ctx(*mut c_void);
// SAFETY: the context is used by one thread at a time: the caller's, then the freeing one's.
unsafe impl Send for Ctx {}

/// Runs `script` (as `nft -f` would) in the calling thread's network namespace: `None` when
/// libnftables is not there, else its result, with nft's own error text.
pub fn run(script: &str) -> Option<Result<(), String>> {
    let lib = lib()?;
    let Ok(text) = CString::new(script) else {
        return Some(Err("the script holds a NUL byte".into()));
    };
    // SAFETY: libnftables' API as documented: a new context (NFT_CTX_DEFAULT), its output
    // and errors buffered rather than printed, one script; the error text copied before the
    // context goes to the thread that frees it.
    let (ctx, rc, err) = unsafe {
        let ctx = (lib.ctx_new)(0);
        if ctx.is_null() {
            return None;
        }
        (lib.buffer_output)(ctx);
        (lib.buffer_error)(ctx);
        let rc = (lib.run_buffer)(ctx, text.as_ptr());
        let e = (lib.get_error)(ctx);
        let err = if e.is_null() {
            String::new()
        } else {
            CStr::from_ptr(e).to_string_lossy().trim().to_string()
        };
        (Ctx(ctx), rc, err)
    };
    let free = lib.ctx_free;
    // Freeing closes the netlink socket, which waits for nf_tables' deferred destroy of the
    // committed transaction (an RCU grace period): not the caller's business.
    // Without a thread to spare, the context stays until the launcher exits.
    let _ = std::thread::Builder::new()
        .name("nft-free".into())
        .spawn(move || {
            let ctx = ctx;
            // SAFETY: the context is no longer used by anyone else; malloc_trim has no
            // preconditions.
            unsafe {
                free(ctx.0);
                // The library's heap was in a thread's malloc arena, which glibc keeps: give
                // its pages back, or every launcher holds ~250 KiB more for its whole life.
                libc::malloc_trim(0);
            }
        });
    Some(if rc == 0 {
        Ok(())
    } else {
        Err(format!("libnftables: {err}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_script_is_refused_with_nfts_message() {
        // Parsing fails before anything reaches the kernel: no root, no namespace needed.
        let Some(r) = run("this is not nftables\n") else {
            panic!("libnftables.so.1 could not be loaded: install libnftables1 (nftables)");
        };
        let e = r.unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
    }
}
