//! The `web` class suite (docs/classes/web.md): a site made on the host as an operator would
//! (`mkfs.ext4 -d` of a tree with `www/`), the image booted with it as its data disk, then
//! HTTP/1.1 requests from the namespace with curl and over a raw TCP socket: index files,
//! MIME types by extension, exact bodies, 404s, HEAD, the directory redirect, no listings, no
//! symbolic links, no way out of the document root.

use super::family::url_host;
use super::{boot_with_disk, require_tool, Booted, Checks, Family, Target};
use crate::error::Error;
use crate::lab::tool;
use ::lab::NetNs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The most of one response the suite reads.
const MAX_RESPONSE: u64 = 4 << 20;

/// Files of the site by extension, with the Content-Type the class requires of each.
const TYPED: &[(&str, &str)] = &[
    ("page.htm", "text/html; charset=utf-8"),
    ("notes.txt", "text/plain; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json"),
    ("feed.xml", "application/xml"),
    ("logo.svg", "image/svg+xml"),
    ("pixel.png", "image/png"),
    ("photo.jpg", "image/jpeg"),
    ("photo.jpeg", "image/jpeg"),
    ("anim.gif", "image/gif"),
    ("favicon.ico", "image/x-icon"),
    ("doc.pdf", "application/pdf"),
    ("module.wasm", "application/wasm"),
    ("font.woff2", "font/woff2"),
    ("site.tar.gz", "application/gzip"),
    ("blob.unknownext", "application/octet-stream"),
    ("README", "application/octet-stream"),
];

const INDEX: &str = "<h1>class suite: index</h1>\n";
const SUB_INDEX: &str = "<p>class suite: sub/index.html</p>\n";
const BIG: usize = 1 << 20;

/// The bytes of a site file: distinct per name, binary for the binary types.
fn content(name: &str) -> Vec<u8> {
    if name.ends_with(".txt") || name.ends_with(".htm") {
        return format!("class suite {name}: café ✓\n").into_bytes();
    }
    let seed = name
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31) ^ u32::from(b));
    (0..600u32)
        // The low byte of each step: truncation is the point.
        .map(|i| (seed.wrapping_add(i.wrapping_mul(2_654_435_761)) >> 13).to_le_bytes()[0])
        .collect()
}

/// The 1 MiB binary file's bytes: 0 to 250 over and over.
fn big_bytes() -> Vec<u8> {
    (0..251u8).cycle().take(BIG).collect()
}

/// The site tree under `dir/www`.
fn write_site(dir: &Path) -> Result<(), Error> {
    let www = dir.join("www");
    let w = |rel: &str, bytes: &[u8]| -> Result<(), Error> {
        let p = www.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(Error::file(parent))?;
        }
        std::fs::write(&p, bytes).map_err(Error::file(&p))
    };
    w("index.html", INDEX.as_bytes())?;
    for (name, _) in TYPED {
        w(name, &content(name))?;
    }
    w("with space.txt", &content("with space.txt"))?;
    w("sub/index.html", SUB_INDEX.as_bytes())?;
    w("empty/other.txt", &content("other.txt"))?;
    let big: Vec<u8> = big_bytes();
    w("big.bin", &big)?;
    std::os::unix::fs::symlink("/etc/passwd", www.join("link.txt")).map_err(|source| {
        Error::Op {
            what: "symlink",
            source,
        }
    })?;
    std::os::unix::fs::symlink("notes.txt", www.join("inner-link.txt")).map_err(|source| {
        Error::Op {
            what: "symlink",
            source,
        }
    })?;
    Ok(())
}

/// The data disk: an ext4 file system made on the host holding the site, root-owned and
/// world-readable, as an operator makes one.
fn site_disk(t: &Target, dir: &Path) -> Result<PathBuf, Error> {
    let content = dir.join("web-site");
    write_site(&content)?;
    let disk = dir.join("web-data.img");
    let mib = t.disk_mib(16);
    tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
            .arg(&content)
            .arg(&disk)
            .arg(format!("{mib}M")),
    )?;
    Ok(disk)
}

/// One HTTP response as curl saw it.
#[derive(Debug, Default)]
struct Response {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn shown(&self) -> String {
        format!(
            "HTTP/{} {} Content-Type {:?} Content-Length {:?}, {} bytes",
            self.version,
            self.status,
            self.header("content-type"),
            self.header("content-length"),
            self.body.len()
        )
    }
}

/// Parses `HTTP/x STATUS ...\r\nheaders\r\n\r\nbody` (curl's `-D -` output).
fn parse_response(raw: &[u8]) -> Result<Response, ResponseError> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(ResponseError::NoHeaderEnd)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    let version = parts
        .next()
        .and_then(|v| v.strip_prefix("HTTP/"))
        .ok_or_else(|| ResponseError::NotStatusLine(status_line.into()))?
        .to_string();
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ResponseError::NoStatusCode(status_line.into()))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        version,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// `curl` GET of `path` (as is: no normalising), from the namespace, redirects not followed.
/// Why an answer is not an HTTP response ([`parse_response`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ResponseError {
    #[error("no end of the header block")]
    NoHeaderEnd,
    #[error("not a status line: {0:?}")]
    NotStatusLine(String),
    #[error("no status code: {0:?}")]
    NoStatusCode(String),
}

/// Why a request of the battery got no response to judge: a failed case.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error("curl {url}: {source} (scripts/setup installs curl)")]
    CurlStart {
        url: String,
        #[source]
        source: ::lab::Error,
    },
    #[error("curl {url}: {stderr}")]
    Curl { url: String, stderr: String },
    #[error("curl {url}: {source}")]
    CurlOutput {
        url: String,
        #[source]
        source: ResponseError,
    },
    #[error("connect {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("send: {0}")]
    Send(#[source] std::io::Error),
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// Setting the socket's timeout.
    #[error("{0}")]
    Socket(#[source] std::io::Error),
    /// Entering the namespace.
    #[error("{0}")]
    Namespace(#[from] ::lab::Error),
    #[error(transparent)]
    Response(#[from] ResponseError),
}

fn get(ns: &NetNs, guest: IpAddr, path: &str) -> Result<Response, RequestError> {
    let url = format!("http://{}{path}", url_host(guest));
    let out = ns
        .output(
            "curl",
            &[
                "-sS",
                "--http1.1",
                "--path-as-is",
                "--max-time",
                "10",
                "--max-filesize",
                "4194304",
                "-D",
                "-",
                &url,
            ],
        )
        .map_err(|source| RequestError::CurlStart {
            url: url.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(RequestError::Curl {
            url,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse_response(&out.stdout).map_err(|source| RequestError::CurlOutput { url, source })
}

/// A raw HTTP/1.1 request over TCP from the namespace; the whole answer until the server
/// closes (the request asks it to), bounded.
fn raw_request(ns: &NetNs, guest: IpAddr, request: String) -> Result<Vec<u8>, RequestError> {
    let addr = std::net::SocketAddr::from((guest, 80));
    ns.enter(move || -> Result<Vec<u8>, RequestError> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|source| RequestError::Connect { addr, source })?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(RequestError::Socket)?;
        s.write_all(request.as_bytes())
            .map_err(RequestError::Send)?;
        let mut buf = Vec::new();
        s.take(MAX_RESPONSE)
            .read_to_end(&mut buf)
            .map_err(RequestError::Read)?;
        Ok(buf)
    })?
}

fn head(ns: &NetNs, guest: IpAddr, path: &str) -> Result<(Response, Vec<u8>), RequestError> {
    let host = url_host(guest);
    let raw = raw_request(
        ns,
        guest,
        format!("HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )?;
    let r = parse_response(&raw)?;
    Ok((r, raw))
}

/// Runs the battery against `t`: a site disk made on the host, the image booted with it and
/// the addresses of `family`, every request to each of them.
pub fn run(t: &Target, family: Family, c: &mut Checks) -> Result<(), Error> {
    require_tool("curl", "curl")?;
    require_tool("mkfs.ext4", "e2fsprogs")?;
    let dir = ::lab::TempDir::new("class-web")?;
    let disk = site_disk(t, dir.path())?;
    let booted = boot_with_disk(t, &disk, family, "WEB-READY", c)?;
    for guest in family.guests() {
        battery(&booted.ns, guest, c);
    }
    finish(t, booted, &disk, c)
}

fn finish(t: &Target, b: Booted, disk: &Path, c: &mut Checks) -> Result<(), Error> {
    let o = t.stop(b.vm)?;
    c.check(
        "WEB-STOP",
        o.powered_off_cleanly(),
        format!("clean power-off after the battery: {}", o.status),
    );
    let state = crate::lab::superblock(disk, "Filesystem state").unwrap_or_default();
    c.check("WEB-STOP", state == "clean", format!("data disk: {state}"));
    Ok(())
}

/// Every request of the battery, each recorded; a request that fails is a failed case.
fn battery(ns: &NetNs, guest: IpAddr, c: &mut Checks) {
    let at = url_host(guest);
    let mut expect = |id: &'static str, path: &str, check: &dyn Fn(&Response) -> bool| match get(
        ns, guest, path,
    ) {
        Ok(r) => c.check(id, check(&r), format!("GET {at}{path}: {}", r.shown())),
        Err(e) => c.check(id, false, format!("GET {at}{path}: {e}")),
    };
    let html = "text/html; charset=utf-8";
    expect("WEB-HTTP11", "/", &|r| r.version == "1.1");
    expect("WEB-INDEX", "/", &|r| {
        r.status == 200 && r.body == INDEX.as_bytes() && r.header("content-type") == Some(html)
    });
    expect("WEB-INDEX", "/index.html", &|r| {
        r.status == 200 && r.body == INDEX.as_bytes()
    });
    expect("WEB-INDEX", "/sub/", &|r| {
        r.status == 200 && r.body == SUB_INDEX.as_bytes()
    });
    for (name, ty) in TYPED {
        let want = content(name);
        expect("WEB-MIME", &format!("/{name}"), &|r| {
            r.status == 200 && r.header("content-type") == Some(ty) && r.body == want
        });
    }
    let spaced = content("with space.txt");
    expect("WEB-PATH", "/with%20space.txt", &|r| {
        r.status == 200 && r.body == spaced
    });
    expect("WEB-LENGTH", "/big.bin", &|r| {
        let want: Vec<u8> = big_bytes();
        r.status == 200
            && r.header("content-length") == Some(BIG.to_string().as_str())
            && r.body == want
    });
    expect("WEB-404", "/missing.html", &|r| r.status == 404);
    expect("WEB-404", "/sub/missing/deeper.txt", &|r| r.status == 404);
    expect("WEB-DIR-SLASH", "/sub", &|r| {
        r.status == 301 && r.header("location").is_some_and(|l| l.ends_with("/sub/"))
    });
    expect("WEB-NO-LISTING", "/empty/", &|r| {
        matches!(r.status, 403 | 404) && !String::from_utf8_lossy(&r.body).contains("other.txt")
    });
    expect("WEB-NO-SYMLINK", "/link.txt", &|r| {
        matches!(r.status, 403 | 404) && !String::from_utf8_lossy(&r.body).contains("root:x:0:0")
    });
    expect("WEB-NO-SYMLINK", "/inner-link.txt", &|r| {
        matches!(r.status, 403 | 404)
    });
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub/../../etc/passwd",
    ] {
        expect("WEB-ROOT-ONLY", path, &|r| {
            r.status != 200 && !String::from_utf8_lossy(&r.body).contains("root:x:0:0")
        });
    }
    head_cases(ns, guest, c);
}

/// HEAD: the GET's status and headers, and no body at all on the wire.
fn head_cases(ns: &NetNs, guest: IpAddr, c: &mut Checks) {
    let notes = content("notes.txt");
    match head(ns, guest, "/notes.txt") {
        Ok((r, raw)) => {
            let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
            let ok = r.status == 200
                && r.header("content-length") == Some(notes.len().to_string().as_str())
                && r.header("content-type") == Some("text/plain; charset=utf-8")
                && raw.len() == end;
            c.check(
                "WEB-HEAD",
                ok,
                format!(
                    "HEAD /notes.txt: {}, {} bytes after the headers",
                    r.shown(),
                    raw.len().saturating_sub(end)
                ),
            );
        }
        Err(e) => c.check("WEB-HEAD", false, format!("HEAD /notes.txt: {e}")),
    }
    match head(ns, guest, "/missing.html") {
        Ok((r, _)) => c.check(
            "WEB-HEAD",
            r.status == 404,
            format!("HEAD /missing.html: {}", r.shown()),
        ),
        Err(e) => c.check("WEB-HEAD", false, format!("HEAD /missing.html: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_binary_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n\r\n\x00\r\n\r\n")
            .unwrap();
        assert_eq!((r.status, r.version.as_str()), (200, "1.1"));
        assert_eq!(r.header("content-type"), Some("image/png"));
        assert_eq!(r.body, b"\x00\r\n\r\n");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn every_file_has_its_own_bytes() {
        let all: Vec<_> = TYPED.iter().map(|(n, _)| content(n)).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| b != a), "{}", TYPED[i].0);
        }
    }
}
