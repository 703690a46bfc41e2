//! Validates contract files: `cargo run -p contract --example check -- FILE...`.
//! Prints `FILE: ok` or each problem as `FILE: json.path: message`; exits 1 if any fails.

fn main() {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        let result = std::fs::read(&path)
            .map_err(|e| vec![format!("cannot read: {e}")])
            .and_then(|text| contract::parse_json(&text).map_err(|e| e.lines()));
        match result {
            Ok(_) => println!("{path}: ok"),
            Err(lines) => {
                failed = true;
                lines.iter().for_each(|l| println!("{path}: {l}"));
            }
        }
    }
    std::process::exit(i32::from(failed));
}
