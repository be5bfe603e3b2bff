//! Generates a synthetic leads CSV for benchmarks: `gen_leads ROWS OUT.csv [--sync-epoch K]`.
//! 15 columns, deterministic (a fixed-seed generator), a little dirt on every 97th row.
//!
//! `--sync-epoch K` makes the file a scheduled sync's source as it is on its K-th night
//! (`benches/sync.sh`): every row's phone is its own (a random phone repeats within a
//! million rows, and a repeated match key is a `duplicate_key` rejection, not a customer),
//! and each night 1..=K edited the `note` of its own 1% of the rows — rows `i` with
//! `(i + 37·night) % 100 == 0`, disjoint from night to night and, before night 50, never
//! an inactive row — so the file of night K differs from that of night K−1 in exactly 1%
//! of its rows.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let out = args.next().unwrap_or_else(|| "leads.csv".into());
    let epoch: Option<u64> = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--sync-epoch"), Some(k)) => Some(k.parse().expect("--sync-epoch takes a number")),
        _ => panic!("usage: gen_leads ROWS OUT.csv [--sync-epoch K]"),
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    let firsts = [
        "Wei", "Li", "Ana", "Tom", "Mei", "Jun", "Sara", "Omar", "Lena", "Raj",
    ];
    let lasts = [
        "Zhang", "Wang", "Silva", "Smith", "Chen", "Liu", "Kim", "Haddad", "Patel", "Sato",
    ];
    let segs = ["vip", "retail", "wholesale", "trial"];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    writeln!(
        w,
        "id,first,last,phone,sms,email,dob,sex,segment,level,status,country,city,note,source"
    )?;
    for i in 1..=rows {
        let r = next();
        let f = firsts[(r % 10) as usize];
        let l = lasts[((r >> 8) % 10) as usize];
        let n = match epoch {
            // A bijection of 1..10^8 (the factor is prime to 10^8): phones never repeat.
            Some(_) => i.wrapping_mul(2_654_435_761) % 100_000_000,
            None => (r >> 16) % 100_000_000,
        };
        // The last night (1..=K) that edited this row, if any.
        let edit = epoch
            .and_then(|k| (1..=k).rev().find(|night| (i + 37 * night) % 100 == 0))
            .map_or(String::new(), |night| format!(" edited {night}"));
        let phone = match (r >> 40) % 3 {
            0 => format!("139{n:08}"),
            1 => format!("+86 138 {:04} {:04}", n / 10_000, n % 10_000),
            _ => format!("0086-137-{:04}-{:04}", n / 10_000, n % 10_000),
        };
        let dob = if i % 97 == 0 {
            "31/02/1990".to_string()
        } else {
            format!(
                "{:02}/{:02}/{}",
                1 + (r >> 20) % 28,
                1 + (r >> 25) % 12,
                1960 + (r >> 30) % 45
            )
        };
        writeln!(
            w,
            "{i},{f},{l},{phone},{n},  {f}.{l}{i}@Example.COM ,{dob},{},{},{},{},CN,  Shanghai ,\"note, {i}{edit}\",web",
            if r & 1 == 0 { "M" } else { "F" },
            segs[((r >> 12) % 4) as usize],
            1 + (r >> 33) % 5,
            if i % 50 == 0 { "inactive" } else { "active" },
        )?;
    }
    w.flush()
}
