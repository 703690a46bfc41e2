//! The `dns` class suite (docs/classes/dns.md): the image gets two zones as
//! `/run/dns/zones/<zone>.zone`, and every query of the battery (SOA, NS, A, AAAA, CNAME, MX,
//! TXT, SRV, a wildcard, an unknown name, a name without the asked type, a name outside its
//! zones) is asked with `dig` and with `kdig`, over UDP and over TCP; each answer must be
//! the one the zone gives, authoritative, with the SOA in the authority section for NXDOMAIN
//! and NODATA.

use super::{boot, require_tool, Checks, Family, Target};
use crate::error::Error;
use ::lab::NetNs;
use serde_json::json;

/// The suite's main zone. Its names cover every record type the class requires.
pub const ZONE_ORIGIN: &str = "suite.example";
pub const ZONE: &str = "$ORIGIN suite.example.
$TTL 300
@           IN SOA   ns1.suite.example. hostmaster.suite.example. 2024060101 3600 600 86400 300
            IN NS    ns1.suite.example.
            IN MX    10 mail.suite.example.
            IN TXT   \"v=spf1 -all\"
ns1         IN A     192.0.2.10
www         IN A     192.0.2.80
            IN AAAA  2001:db8::80
mail        IN A     192.0.2.25
web         IN CNAME www.suite.example.
_http._tcp  IN SRV   0 5 80 www.suite.example.
*.apps      IN A     192.0.2.81
";

/// A second zone: the class serves every zone file it is given.
pub const SECOND_ORIGIN: &str = "second.example";
pub const SECOND_ZONE: &str = "$TTL 60
@     IN SOA ns1.suite.example. hostmaster.suite.example. 7 3600 600 86400 60
      IN NS  ns1.suite.example.
host  IN A   198.51.100.7
";

/// The most of a client's output the suite reads.
const MAX_OUTPUT: usize = 64 << 10;

/// One resource record as a client prints it: owner, type, data (white space collapsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub rtype: String,
    pub data: String,
}

/// A response as `dig` or `kdig` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: String,
    pub authoritative: bool,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
}

/// Parses `dig`/`kdig` default output. Both print the
/// header as `;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: N` (kdig with `;`), the flags
/// as `;; flags: qr aa rd;` (kdig `;; Flags:`), and sections after `;; ANSWER SECTION:` and
/// `;; AUTHORITY SECTION:`. Anything else is ignored.
pub fn parse_response(text: &str) -> Result<Response, ParseError> {
    let text = &text[..text.len().min(MAX_OUTPUT)];
    let mut r = Response::default();
    #[derive(PartialEq)]
    enum Section {
        Other,
        Answer,
        Authority,
    }
    let mut section = Section::Other;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .split("status: ")
            .nth(1)
            .filter(|_| line.contains("HEADER"))
        {
            r.status = rest
                .split([',', ';', ' '])
                .next()
                .unwrap_or_default()
                .to_string();
        } else if let Some(flags) = line
            .strip_prefix(";; flags:")
            .or_else(|| line.strip_prefix(";; Flags:"))
        {
            let flags = flags.split(';').next().unwrap_or_default();
            r.authoritative = flags.split_whitespace().any(|f| f == "aa");
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Section::Answer;
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Section::Authority;
        } else if line.starts_with(";;") || line.is_empty() {
            if line.starts_with(";;") {
                section = Section::Other;
            }
        } else if !line.starts_with(';') && section != Section::Other {
            let rec = parse_record(line)?;
            match section {
                Section::Answer => r.answer.push(rec),
                Section::Authority => r.authority.push(rec),
                Section::Other => {}
            }
        }
    }
    if r.status.is_empty() {
        return Err(ParseError::NoHeader(text.chars().take(400).collect()));
    }
    Ok(r)
}

/// `name TTL IN TYPE DATA...`
fn parse_record(line: &str) -> Result<Record, ParseError> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 4 || f[2] != "IN" {
        return Err(ParseError::NotRecord(line.into()));
    }
    Ok(Record {
        name: f[0].to_ascii_lowercase(),
        rtype: f[3].to_string(),
        data: f[4..].join(" "),
    })
}

/// The DNS clients the battery uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Dig,
    Kdig,
}

impl Client {
    pub fn program(self) -> &'static str {
        match self {
            Client::Dig => "dig",
            Client::Kdig => "kdig",
        }
    }

    fn args(self, server: &str, name: &str, rtype: &str, tcp: bool) -> Vec<String> {
        let mut a = vec![
            format!("@{server}"),
            name.to_string(),
            rtype.to_string(),
            "+norecurse".into(),
            "+time=2".into(),
        ];
        // Their default output: header, flags and the sections with their titles (kdig's
        // `+noall +answer` drops the titles).
        a.push(match self {
            Client::Dig => "+tries=3".into(),
            Client::Kdig => "+retry=2".into(),
        });
        if tcp {
            a.push("+tcp".into());
        }
        a
    }
}

/// Asks `server` from inside `ns`.
pub fn query(
    ns: &NetNs,
    client: Client,
    server: &str,
    name: &str,
    rtype: &str,
    tcp: bool,
) -> Result<Response, QueryError> {
    let args = client.args(server, name, rtype, tcp);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ns
        .output(client.program(), &args)
        .map_err(|source| QueryError::Run { client, source })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_response(&text).map_err(|source| QueryError::Output {
        client,
        args: args.join(" "),
        source,
    })
}

/// Why a client's output is not a response ([`parse_response`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no response header in the client's output: {0}")]
    NoHeader(String),
    #[error("not a record line: {0}")]
    NotRecord(String),
}

/// Why a query got no response to judge ([`query`]): a failed case of the battery.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{}: {source}", client.program())]
    Run {
        client: Client,
        #[source]
        source: ::lab::Error,
    },
    #[error("{} {args}: {source}", client.program())]
    Output {
        client: Client,
        args: String,
        #[source]
        source: ParseError,
    },
    #[error(transparent)]
    Mismatch(#[from] Mismatch),
}

/// How a response differs from what the battery expects ([`judge`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("status {got} (want {want})")]
    Status { got: String, want: &'static str },
    #[error("the AA flag is not set: the class serves its zones authoritatively")]
    NotAuthoritative,
    #[error("answer {got:?} (want {want:?})")]
    Answer { got: Vec<Triple>, want: Vec<Triple> },
    #[error("no SOA of {zone} in the authority section ({authority:?})")]
    NoSoa {
        zone: String,
        authority: Vec<Record>,
    },
}

/// A record as `(owner, type, data)`.
pub type Triple = (String, String, String);

/// What one query of the battery must get.
#[derive(Debug)]
pub struct Expect {
    pub what: &'static str,
    pub name: String,
    pub rtype: &'static str,
    pub status: &'static str,
    /// `(owner, type, data)` that must all be in the answer section, and nothing else.
    pub answer: Vec<(String, &'static str, String)>,
    /// The SOA of this zone must be in the authority section (NXDOMAIN, NODATA).
    pub soa_of: Option<String>,
    /// Whether the AA bit must be set (for names in the image's zones).
    pub authoritative: bool,
}

fn fq(name: &str) -> String {
    format!("{name}.")
}

/// The battery: every query and what the zones say it gets.
pub fn battery() -> Vec<Expect> {
    let mut all = answered();
    all.extend(unanswered());
    all
}

/// A query the zones answer authoritatively with NOERROR and `answer`.
fn e(
    what: &'static str,
    name: String,
    rtype: &'static str,
    answer: Vec<(String, &'static str, String)>,
) -> Expect {
    Expect {
        what,
        name,
        rtype,
        status: "NOERROR",
        answer,
        soa_of: None,
        authoritative: true,
    }
}

/// A name of the first zone.
fn at(label: &str) -> String {
    format!("{label}.{ZONE_ORIGIN}")
}

/// The queries with an answer: each record type of the first zone, the wildcard.
fn answered() -> Vec<Expect> {
    let z = ZONE_ORIGIN;
    let soa = format!("ns1.{z}. hostmaster.{z}. 2024060101 3600 600 86400 300");
    vec![
        e("SOA", z.to_string(), "SOA", vec![(fq(z), "SOA", soa)]),
        e(
            "NS",
            z.to_string(),
            "NS",
            vec![(fq(z), "NS", fq(&at("ns1")))],
        ),
        e(
            "A",
            at("www"),
            "A",
            vec![(fq(&at("www")), "A", "192.0.2.80".into())],
        ),
        e(
            "AAAA",
            at("www"),
            "AAAA",
            vec![(fq(&at("www")), "AAAA", "2001:db8::80".into())],
        ),
        e(
            "CNAME",
            at("web"),
            "A",
            vec![
                (fq(&at("web")), "CNAME", fq(&at("www"))),
                (fq(&at("www")), "A", "192.0.2.80".into()),
            ],
        ),
        e(
            "MX",
            z.to_string(),
            "MX",
            vec![(fq(z), "MX", format!("10 {}", fq(&at("mail"))))],
        ),
        e(
            "TXT",
            z.to_string(),
            "TXT",
            vec![(fq(z), "TXT", "\"v=spf1 -all\"".into())],
        ),
        e(
            "SRV",
            at("_http._tcp"),
            "SRV",
            vec![(
                fq(&at("_http._tcp")),
                "SRV",
                format!("0 5 80 {}", fq(&at("www"))),
            )],
        ),
        e(
            "wildcard",
            at("anything.apps"),
            "A",
            vec![(fq(&at("anything.apps")), "A", "192.0.2.81".into())],
        ),
    ]
}

/// NXDOMAIN and NODATA with the SOA, the second zone, a name outside both (REFUSED).
fn unanswered() -> Vec<Expect> {
    let z = ZONE_ORIGIN;
    vec![
        Expect {
            status: "NXDOMAIN",
            soa_of: Some(z.to_string()),
            ..e("unknown name (NXDOMAIN)", at("nope"), "A", vec![])
        },
        Expect {
            soa_of: Some(z.to_string()),
            ..e("no such type (NODATA)", at("www"), "MX", vec![])
        },
        e(
            "second zone",
            format!("host.{SECOND_ORIGIN}"),
            "A",
            vec![(
                fq(&format!("host.{SECOND_ORIGIN}")),
                "A",
                "198.51.100.7".into(),
            )],
        ),
        Expect {
            status: "REFUSED",
            authoritative: false,
            ..e(
                "outside its zones (REFUSED)",
                "www.other.example".into(),
                "A",
                vec![],
            )
        },
    ]
}

/// Whether `r` is what `x` expects; the reason when not.
pub fn judge(x: &Expect, r: &Response) -> Result<(), Mismatch> {
    if r.status != x.status {
        return Err(Mismatch::Status {
            got: r.status.clone(),
            want: x.status,
        });
    }
    if x.authoritative && !r.authoritative {
        return Err(Mismatch::NotAuthoritative);
    }
    let got: Vec<Triple> = r
        .answer
        .iter()
        .map(|a| (a.name.clone(), a.rtype.clone(), a.data.clone()))
        .collect();
    let want: Vec<Triple> = x
        .answer
        .iter()
        .map(|(n, t, d)| (n.clone(), t.to_string(), d.clone()))
        .collect();
    let mut g = got.clone();
    let mut w = want.clone();
    g.sort();
    w.sort();
    if g != w {
        return Err(Mismatch::Answer { got, want });
    }
    if let Some(zone) = &x.soa_of {
        let soa = r
            .authority
            .iter()
            .any(|a| a.rtype == "SOA" && a.name == fq(zone));
        if !soa {
            return Err(Mismatch::NoSoa {
                zone: zone.clone(),
                authority: r.authority.clone(),
            });
        }
    }
    Ok(())
}

/// The spec of the suite's boot: both zones as the class's contract files.
pub fn spec() -> serde_json::Value {
    json!({
        "files": [
            {"path": format!("/run/dns/zones/{ZONE_ORIGIN}.zone"), "content": ZONE},
            {"path": format!("/run/dns/zones/{SECOND_ORIGIN}.zone"), "content": SECOND_ZONE},
        ]
    })
}

/// Boots the image with the suite's zones and the addresses of `family`, and runs the
/// battery against each address with both clients over both transports.
pub fn run(t: &Target, family: Family, checks: &mut Checks) -> Result<(), Error> {
    require_tool("dig", "bind9-dnsutils")?;
    require_tool("kdig", "knot-dnsutils")?;
    let booted = boot(t, spec(), &[], family)?;
    checks.check(
        "ready",
        true,
        format!("ready after {} ms", booted.ready_after.as_millis()),
    );
    for server in family.guests() {
        ask_battery(&booted.ns, &server.to_string(), checks);
    }
    Ok(())
}

/// Every query of the battery to `server`, with both clients over both transports.
fn ask_battery(ns: &NetNs, server: &str, checks: &mut Checks) {
    for x in battery() {
        for client in [Client::Dig, Client::Kdig] {
            for tcp in [false, true] {
                let name = format!(
                    "{} ({} {})",
                    x.what,
                    client.program(),
                    if tcp { "tcp" } else { "udp" }
                );
                let seen = query(ns, client, server, &x.name, x.rtype, tcp)
                    .and_then(|r| judge(&x, &r).map(|()| r).map_err(QueryError::from));
                match seen {
                    Ok(r) => checks.check(
                        name,
                        true,
                        format!(
                            "@{server} {} {}: {} {}",
                            x.name,
                            x.rtype,
                            r.status,
                            r.answer
                                .iter()
                                .map(|a| format!("{} {}", a.rtype, a.data))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Err(e) => checks.check(
                        name,
                        false,
                        format!("@{server} {} {}: {e}", x.name, x.rtype),
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIG: &str = ";; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 1
;; flags: qr aa; QUERY: 1, ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 1

;; AUTHORITY SECTION:
suite.example.\t300\tIN\tSOA\tns1.suite.example. hostmaster.suite.example. 1 3600 600 86400 300
";
    const KDIG: &str = ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2
;; Flags: qr aa; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 0

;; ANSWER SECTION:
web.suite.example.  \t300\tIN\tCNAME\twww.suite.example.
www.suite.example.  \t300\tIN\tA\t192.0.2.80
";

    #[test]
    fn parses_both_clients() {
        let r = parse_response(DIG).unwrap();
        assert_eq!(r.status, "NXDOMAIN");
        assert!(r.authoritative);
        assert_eq!(r.authority[0].rtype, "SOA");
        let r = parse_response(KDIG).unwrap();
        assert_eq!(r.status, "NOERROR");
        assert_eq!(r.answer.len(), 2);
        assert_eq!(r.answer[0].data, "www.suite.example.");
        assert!(parse_response("garbage").is_err());
    }

    #[test]
    fn judges_answers() {
        let b = battery();
        let cname = b.iter().find(|x| x.what == "CNAME").unwrap();
        judge(cname, &parse_response(KDIG).unwrap()).unwrap();
        let a = b.iter().find(|x| x.what == "A").unwrap();
        let e = judge(a, &parse_response(KDIG).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("answer"), "{e}");
        let nx = b.iter().find(|x| x.status == "NXDOMAIN").unwrap();
        judge(nx, &parse_response(DIG).unwrap()).unwrap();
        let mut no_aa = parse_response(DIG).unwrap();
        no_aa.authoritative = false;
        assert!(judge(nx, &no_aa)
            .unwrap_err()
            .to_string()
            .contains("AA flag"));
        no_aa.authoritative = true;
        no_aa.authority.clear();
        assert!(judge(nx, &no_aa)
            .unwrap_err()
            .to_string()
            .contains("no SOA"));
    }
}
