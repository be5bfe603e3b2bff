//! Compressed and encoded sources as a user has them: a `.csv.gz` from an export, a
//! `.jsonl.zst`, a GBK CSV saved by a spreadsheet program on a Chinese system, Big5,
//! Shift_JIS, EUC-KR and UTF-16 files — every file generated here, in the test.

use std::io::{Read, Write};

use encoding_rs::Encoding;
use serde_json::{Value, json};

use crate::common::{API, Workspace, jsonl, run, with_sim_credentials};

fn job(source: &str, mapping: &str) -> String {
    format!("{API}source: {source}\nmapping:\n{mapping}")
}

const NAME_EMAIL: &str = "  full_name: \"{{ row.name }}\"\n  email: \"{{ row.email }}\"\n";

#[track_caller]
fn plan(ws: &Workspace) -> Value {
    let out = run(ws.cmd(&["plan", "--json", "--limit", "100000", "job.yaml"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

fn names(p: &Value) -> Vec<String> {
    p["preview"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer"]["full_name"].as_str().unwrap().to_string())
        .collect()
}

fn rows(p: &Value) -> Vec<u64> {
    p["preview"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["row"].as_u64().unwrap())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// 3,000 leads with a multi-line quoted field, a blank line and two broken records.
fn leads_csv() -> Vec<u8> {
    let mut csv = String::from("name,email\n");
    for i in 1..=3000 {
        match i {
            7 => csv.push_str("\"Multi\nLine\",m@x.io\n\n"),
            100 => csv.push_str("Broken,b@x.io,extra\n"),
            2999 => csv.push_str("\"Open,o@x.io\n"),
            _ => csv.push_str(&format!("Lead {i},l{i}@x.io\n")),
        }
    }
    csv.into_bytes()
}

#[test]
fn gzip_and_zstd_read_as_the_plain_file_row_for_row() {
    let ws = Workspace::new();
    let plain = leads_csv();
    ws.write("leads.csv", &plain);
    ws.write("leads.csv.gz", gzip(&plain));
    ws.write("leads.csv.zst", zstd(&plain));
    // No telling extension: the setting says it.
    ws.write("leads.export", gzip(&plain));
    ws.write("job.yaml", job("{type: csv, path: leads.csv}", NAME_EMAIL));
    let expected = plan(&ws);
    assert_eq!(
        expected["counts"],
        json!({"rows": 3000, "valid": 2998, "rejected": 2, "skipped": 0, "unchanged": 0})
    );
    assert_eq!(
        expected["preview"][6]["customer"]["full_name"],
        "Multi\nLine"
    );
    for (source, compression) in [
        ("{type: csv, path: leads.csv.gz}", "gzip"),
        ("{type: csv, path: leads.csv.zst}", "zstd"),
        ("{type: csv, path: leads.export, compression: gzip}", "gzip"),
    ] {
        ws.write("job.yaml", job(source, NAME_EMAIL));
        let p = plan(&ws);
        assert_eq!(p["counts"], expected["counts"], "{source}");
        assert_eq!(
            p["rejected_by_reason"], expected["rejected_by_reason"],
            "{source}"
        );
        assert_eq!(rows(&p), rows(&expected), "{source}");
        assert_eq!(names(&p), names(&expected), "{source}");
        assert_eq!(p["source_text"]["compression"], compression, "{source}");
        let text = run(ws.cmd(&["plan", "job.yaml"]));
        assert!(
            text.stdout.contains(&format!("(csv, {compression})")),
            "{}",
            text.stdout
        );
    }
    // `compression: none` reads the bytes as they are: a gzip file is then no CSV.
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: leads.csv.gz, compression: none}",
            NAME_EMAIL,
        ),
    );
    let out = run(ws.cmd(&["plan", "job.yaml"]));
    assert_eq!(out.code, 2, "{}", out.stdout);
}

#[test]
fn compressed_jsonl_and_standard_input() {
    let ws = Workspace::new();
    let mut text = String::new();
    for i in 1..=500 {
        if i == 250 {
            text.push_str("not json\n");
        } else {
            text.push_str(&format!("{{\"name\":\"P{i}\",\"email\":\"p{i}@x.io\"}}\n"));
        }
    }
    ws.write("in.jsonl.zst", zstd(text.as_bytes()));
    ws.write(
        "job.yaml",
        job("{type: jsonl, path: in.jsonl.zst}", NAME_EMAIL),
    );
    let p = plan(&ws);
    assert_eq!(p["counts"]["valid"], 499);
    assert_eq!(p["rejected_by_reason"][0]["example_rows"], json!([250]));
    assert_eq!(p["preview"][498]["customer"]["full_name"], "P500");

    ws.write(
        "job.yaml",
        job("{type: jsonl, path: \"-\", compression: gzip}", NAME_EMAIL),
    );
    let mut c = ws.cmd(&["plan", "--json", "job.yaml"]);
    c.write_stdin(gzip(text.as_bytes()));
    let out = run(c);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let p: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(p["counts"]["valid"], 499);
}

/// A .csv.gz cut in half, and one with a damaged byte, are bad input (exit 2), never a
/// short file read as if whole nor a resumable stop that every resume repeats: plan says
/// how far it read; a run sends every whole batch read before the break, names the row and
/// line it stopped after and the rows of the unfinished batch it did not send, and is not
/// resumable; a resume meets the same break (exit 2, not 3). Once the file is whole again,
/// `resume --force` (the way out it names) sends the rest: every row once.
#[test]
fn a_damaged_compressed_file_is_bad_input_and_every_row_read_is_accounted_for() {
    let ws = Workspace::new();
    let mut csv = String::from("name,email\n");
    for i in 1..=20_000 {
        csv.push_str(&format!("Lead {i},l{i}@x.io\n"));
    }
    let mut gz = gzip(csv.as_bytes());
    gz.truncate(gz.len() / 2);
    // What can be read of it: the whole lines before the break.
    let mut readable = Vec::new();
    let _ = flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut readable);
    let rows = readable.iter().filter(|&&b| b == b'\n').count() as u64 - 1;
    assert!((1_000..19_000).contains(&rows), "{rows}");
    ws.write("leads.csv.gz", &gz);
    ws.write(
        "job.yaml",
        job("{type: csv, path: leads.csv.gz}", NAME_EMAIL),
    );
    let out = run(ws.cmd(&["plan", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let after = format!("after row {rows} (line {})", rows + 1);
    assert!(
        out.stderr.contains("the gzip data is damaged or cut short") && out.stderr.contains(&after),
        "{}",
        out.stderr
    );

    let out = run(run_cmd(&ws, &["run", "job.yaml", "--json"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["status"], "interrupted", "{summary}");
    assert_eq!(summary["resumable"], false, "{summary}");
    // Batches of 100 customers: the whole ones are sent, the rest named.
    let sent = rows / 100 * 100;
    assert!(sent < rows, "the break fell on a batch boundary: {rows}");
    assert_eq!(summary["counts"]["rows"], sent, "{summary}");
    assert_eq!(summary["counts"]["created"], sent, "{summary}");
    let reason = summary["stopped_reason"].as_str().unwrap();
    assert!(
        reason.contains("the gzip data is damaged or cut short")
            && reason.contains(&after)
            && reason.contains(&format!(
                "rows {}-{rows}, read after the last whole batch, were not sent",
                sent + 1
            ))
            && reason.contains("--force"),
        "{reason}"
    );
    let dir = run_dir(&ws);
    assert_eq!(jsonl(&dir.join("created.jsonl")).len() as u64, sent);
    let out = run(run_cmd(&ws, &["resume", dir.to_str().unwrap()]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("damaged or cut short"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("resume with"), "{}", out.stdout);
    // The file whole again: resume --force sends the rest, and every row is created once.
    ws.write("leads.csv.gz", gzip(csv.as_bytes()));
    let out = run(run_cmd(&ws, &["resume", dir.to_str().unwrap(), "--force"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let created: std::collections::BTreeSet<u64> = jsonl(&dir.join("created.jsonl"))
        .iter()
        .map(|l| l["row"].as_u64().unwrap())
        .collect();
    assert_eq!(created, (1..=20_000).collect());
    assert_eq!(jsonl(&dir.join("created.jsonl")).len(), 20_000);

    // A damaged byte instead of a cut: the same answer (it was exit 2 here, 3 for a cut).
    let mut gz = gzip(csv.as_bytes());
    let middle = gz.len() / 2;
    gz[middle] ^= 0x55;
    ws.write("leads.csv.gz", &gz);
    let out = run(ws.cmd(&["plan", "job.yaml"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("damaged or cut short"),
        "{}",
        out.stderr
    );
}

/// `text` encoded in `encoding` (the test's own check that it can be).
fn encoded(text: &str, encoding: &'static Encoding) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding.encode(text);
    assert!(!unmappable, "{text:?} has no {} form", encoding.name());
    bytes.into_owned()
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend(if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

/// A CSV of `names` in `encoding` (header `name,email`), whose third row has a byte
/// sequence no decoder of it accepts (`bad`) after its name.
fn encoded_csv(names: &[&str], encode: &dyn Fn(&str) -> Vec<u8>, bad: &[u8]) -> Vec<u8> {
    let mut out = encode("name,email\n");
    for (i, name) in names.iter().enumerate() {
        out.extend(encode(name));
        if i == 2 {
            out.extend(bad);
        }
        out.extend(encode(&format!(",p{i}@x.io\n")));
    }
    out
}

/// One encoding's case: its label, sample names, how text is written in it, a sequence it
/// cannot decode, and the name the encoding is reported by.
struct Case {
    label: &'static str,
    samples: &'static [&'static str],
    encode: fn(&str) -> Vec<u8>,
    bad: &'static [u8],
    picked: &'static str,
}

impl Case {
    fn new(
        label: &'static str,
        samples: &'static [&'static str],
        encode: fn(&str) -> Vec<u8>,
        bad: &'static [u8],
        picked: &'static str,
    ) -> Case {
        Case {
            label,
            samples,
            encode,
            bad,
            picked,
        }
    }
}

#[test]
fn every_encoding_decodes_and_a_bad_sequence_rejects_its_row_only() {
    let cases = [
        Case::new(
            "gbk",
            &["张伟", "王芳", "李娜", "刘洋"],
            |t: &str| encoded(t, encoding_rs::GBK),
            b"\xFF",
            "GBK",
        ),
        Case::new(
            // 𠀀 and 𪚥 are four bytes each in GB18030; € is one byte (0x80) there.
            "gb18030",
            &["𠀀明", "𪚥华", "陈€", "赵磊"],
            |t: &str| encoded(t, encoding_rs::GB18030),
            b"\xFF",
            "gb18030",
        ),
        Case::new(
            "big5",
            &["陳大文", "黃志明", "林淑芬", "張家豪"],
            |t: &str| encoded(t, encoding_rs::BIG5),
            b"\xFF",
            "Big5",
        ),
        Case::new(
            "shift_jis",
            &["山田太郎", "佐藤花子", "鈴木一郎", "ｶﾀｶﾅ"],
            |t: &str| encoded(t, encoding_rs::SHIFT_JIS),
            b"\xFF",
            "Shift_JIS",
        ),
        Case::new(
            "euc-kr",
            &["김민준", "이서연", "박지훈", "최수아"],
            |t: &str| encoded(t, encoding_rs::EUC_KR),
            b"\xFF",
            "EUC-KR",
        ),
        Case::new(
            // An unpaired high surrogate (U+D800) before the comma.
            "utf-16",
            &["José", "名前", "Zoë", "😀 Smile"],
            |t: &str| utf16(t, false)[2..].to_vec(),
            b"\x00\xD8",
            "UTF-16LE",
        ),
        Case::new(
            "utf-16",
            &["José", "名前", "Zoë", "😀 Smile"],
            |t: &str| utf16(t, true)[2..].to_vec(),
            b"\xD8\x00",
            "UTF-16BE",
        ),
    ];
    for Case {
        label,
        samples,
        encode,
        bad,
        picked,
    } in cases
    {
        let ws = Workspace::new();
        let mut bytes = encoded_csv(samples, &encode, bad);
        if label == "utf-16" {
            let bom = if picked == "UTF-16BE" {
                [0xFE, 0xFF]
            } else {
                [0xFF, 0xFE]
            };
            bytes.splice(0..0, bom);
        }
        ws.write("in.csv", &bytes);
        ws.write(
            "job.yaml",
            job(
                &format!("{{type: csv, path: in.csv, encoding: {label}}}"),
                NAME_EMAIL,
            ),
        );
        let out = run(ws.cmd(&["validate", "job.yaml"]));
        assert_eq!(out.code, 0, "{label}: {}", out.stderr);
        let p = plan(&ws);
        assert_eq!(p["source_text"]["encoding"], picked, "{label}");
        assert_eq!(p["source_text"]["encoding_detected"], false, "{label}");
        assert_eq!(
            p["counts"],
            json!({"rows": 4, "valid": 3, "rejected": 1, "skipped": 0, "unchanged": 0}),
            "{label}: {p}"
        );
        assert_eq!(rows(&p), vec![1, 2, 4], "{label}");
        let expected: Vec<String> = [0, 1, 3].iter().map(|&i| samples[i].to_string()).collect();
        assert_eq!(names(&p), expected, "{label}");
        let reason = &p["rejected_by_reason"][0];
        assert_eq!(reason["example_rows"], json!([3]), "{label}");
        assert_eq!(
            reason["example"],
            format!("line 4: field `name` is not valid {picked} (check `source.encoding`)"),
            "{label}"
        );
    }
}

/// A customer list as a Chinese operations team keeps it, saved from a spreadsheet
/// program: Chinese headers, names, cities, remarks, phone numbers.
fn chinese_customers(rows: usize) -> String {
    let surnames = [
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙",
    ];
    let given = [
        "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
    ];
    let cities = [
        "北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安", "重庆",
    ];
    let remarks = [
        "老客户，已回访",
        "新客户",
        "展会获取，需跟进",
        "",
        "对价格敏感",
        "推荐人：王经理",
    ];
    let mut text = String::from("姓名,手机,邮箱,城市,备注\n");
    for i in 0..rows {
        let name = format!(
            "{}{}",
            surnames[i % surnames.len()],
            given[(i * 7) % given.len()]
        );
        text.push_str(&format!(
            "{name},1{:010},user{i}@example.cn,{},{}\n",
            3_800_000_000u64 + i as u64 * 7_919,
            cities[(i * 3) % cities.len()],
            remarks[i % remarks.len()]
        ));
    }
    text
}

const CHINESE_MAPPING: &str = "  full_name: \"{{ row.姓名 }}\"\n  whats_app_phone: \"{{ row.手机 | phone('86') }}\"\n  remark: \"{{ row.城市 }} {{ row.备注 }}\"\n";

#[test]
fn auto_picks_gbk_for_a_chinese_customer_list_and_plan_says_so() {
    let ws = Workspace::new();
    let text = chinese_customers(60);
    ws.write("客户.csv", encoded(&text, encoding_rs::GBK));
    ws.write(
        "job.yaml",
        job(
            "{type: csv, path: 客户.csv, encoding: auto}",
            CHINESE_MAPPING,
        ),
    );
    let out = run(ws.cmd(&["validate", "job.yaml"]));
    assert_eq!(
        out.code, 0,
        "the Chinese header is read as GBK: {}",
        out.stderr
    );
    let p = plan(&ws);
    assert_eq!(
        p["source_text"],
        json!({"compression": "none", "encoding": "GBK", "encoding_detected": true})
    );
    assert_eq!(p["counts"]["valid"], 60);
    assert_eq!(p["preview"][0]["customer"]["full_name"], "王伟");
    assert_eq!(p["preview"][0]["customer"]["remark"], "北京 老客户，已回访");
    let human = run(ws.cmd(&["plan", "job.yaml"]));
    assert!(
        human.stdout.contains("(csv, encoding: auto → GBK)"),
        "{}",
        human.stdout
    );

    // The same list as UTF-8 (with a BOM, and without) stays UTF-8; compressed, too.
    for (file, bytes, compression) in [
        ("u.csv", text.clone().into_bytes(), "none"),
        (
            "bom.csv",
            [&b"\xEF\xBB\xBF"[..], text.as_bytes()].concat(),
            "none",
        ),
        ("g.csv.gz", gzip(&encoded(&text, encoding_rs::GBK)), "gzip"),
    ] {
        ws.write(file, &bytes);
        ws.write(
            "job.yaml",
            job(
                &format!("{{type: csv, path: {file}, encoding: auto}}"),
                CHINESE_MAPPING,
            ),
        );
        let p = plan(&ws);
        let expected = if file == "g.csv.gz" { "GBK" } else { "UTF-8" };
        assert_eq!(p["source_text"]["encoding"], expected, "{file}");
        assert_eq!(p["source_text"]["compression"], compression, "{file}");
        assert_eq!(p["preview"][0]["customer"]["full_name"], "王伟", "{file}");
    }
}

#[test]
fn a_gbk_file_read_as_utf8_is_rejected_row_by_row_with_advice() {
    let ws = Workspace::new();
    ws.write(
        "in.csv",
        encoded("name,email\n张伟,a@x.io\nAnn,b@x.io\n", encoding_rs::GBK),
    );
    ws.write("job.yaml", job("{type: csv, path: in.csv}", NAME_EMAIL));
    let p = plan(&ws);
    assert_eq!(p["counts"]["rejected"], 1);
    assert_eq!(
        p["rejected_by_reason"][0]["example"],
        "line 2: field `name` is not valid UTF-8 (save the file as UTF-8, or set `source.encoding` (`auto` guesses))"
    );
}

/// A 1 MiB file of bytes no GBK character starts with, read as GBK (a file mislabelled in
/// the job): every one of its 16,384 lines is rejected on its own, with its row number, and
/// the valid GBK rows among them still read. (Each undecodable byte used to zero ~196 KB of
/// buffer: this took 54 s in a debug build; the decoder's work is now linear in its input.)
#[test]
fn a_mislabelled_megabyte_is_rejected_row_by_row() {
    let ws = Workspace::new();
    let mut bytes = b"name,email\n".to_vec();
    let lines = 16_384u64;
    for i in 1..=lines {
        if i % 1000 == 0 {
            bytes.extend(encoded("张伟,a@x.io\n", encoding_rs::GBK));
        } else {
            bytes.extend([0xFF; 60]);
            bytes.extend(b",a@x.io\n");
        }
    }
    assert!(bytes.len() > 1 << 20);
    ws.write("in.csv", bytes);
    ws.write(
        "job.yaml",
        job("{type: csv, path: in.csv, encoding: gbk}", NAME_EMAIL),
    );
    let p = plan(&ws);
    let good = lines / 1000;
    assert_eq!(p["counts"]["rows"], lines, "{}", p["counts"]);
    assert_eq!(p["counts"]["valid"], good, "{}", p["counts"]);
    assert_eq!(p["counts"]["rejected"], lines - good, "{}", p["counts"]);
    assert_eq!(rows(&p), (1..=good).map(|i| i * 1000).collect::<Vec<_>>());
    let group = &p["rejected_by_reason"][0];
    assert_eq!(group["count"], lines - good, "{group}");
    assert_eq!(group["example_rows"][0], 1, "{group}");
    assert_eq!(group["example_rows"][1], 2, "{group}");
    assert!(
        group["example"]
            .as_str()
            .unwrap()
            .starts_with("line 2: field `name` is not valid GBK"),
        "{group}"
    );
}

fn run_cmd(ws: &Workspace, args: &[&str]) -> assert_cmd::Command {
    let mut c = ws.cmd(args);
    with_sim_credentials(&mut c);
    c
}

fn run_dir(ws: &Workspace) -> std::path::PathBuf {
    let dirs = crate::common::run_dirs(&ws.path("runs/t"));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// R13: the encoding `auto` picked is in the manifest, and `resume` reads the source in it
/// rather than guessing again.
#[cfg(feature = "failpoints")]
#[test]
fn the_encoding_auto_picked_is_recorded_and_resume_reads_in_it() {
    for tamper in [false, true] {
        let ws = Workspace::new();
        // One row undecodable in GBK: rejected with its raw text, U+FFFD where the byte was.
        let mut bytes = encoded(&chinese_customers(120), encoding_rs::GBK);
        let at = bytes.windows(2).position(|w| w == b"\n\xcd").unwrap() + 1; // row of 王 (0xCD 0xF5)
        bytes.insert(at + 2, 0xFF);
        ws.write("in.csv.gz", gzip(&bytes));
        ws.write(
            "job.yaml",
            job(
                "{type: csv, path: in.csv.gz, encoding: auto}",
                CHINESE_MAPPING,
            )
            .replace("mapping:", "batch_size: 20\nmapping:"),
        );
        // Untampered: killed with a batch in doubt; tampered: before anything was sent, so
        // the resume reads every row again.
        let (point, nth) = if tamper {
            ("before_intent", "1")
        } else {
            ("before_checkpoint", "2")
        };
        crate::common::crash_at(run_cmd(&ws, &["run", "job.yaml"]), point, nth);
        let dir = run_dir(&ws);
        let manifest_path = dir.join("manifest.json");
        let mut manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
        assert_eq!(manifest["kind"]["batch_create"]["encoding"], "GBK");
        if tamper {
            // Were the encoding guessed again, this would change nothing.
            manifest["kind"]["batch_create"]["encoding"] = json!("UTF-8");
            std::fs::write(&manifest_path, manifest.to_string()).unwrap();
        }
        let out = run(run_cmd(&ws, &["resume", dir.to_str().unwrap()]));
        let rejected = jsonl(&dir.join("rejected.jsonl"));
        let created = jsonl(&dir.join("created.jsonl"));
        if tamper {
            // Read as UTF-8, not even the Chinese header is valid.
            assert!(
                out.stdout.contains("the CSV header row is not valid UTF-8"),
                "the resume read the source as the manifest says: {}{}",
                out.stdout,
                out.stderr
            );
            assert_ne!(out.code, 0);
            assert!(created.is_empty() && rejected.is_empty());
            continue;
        }
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert_eq!(created.len(), 119);
        assert_eq!(rejected.len(), 1);
        let bad = &rejected[0];
        assert_eq!(
            (bad["row"].as_u64(), bad["line"].as_u64()),
            (Some(1), Some(2))
        );
        assert!(
            bad["raw"].as_str().unwrap().starts_with("王\u{FFFD}"),
            "{bad}"
        );
        assert!(
            bad["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("not valid GBK"),
            "{bad}"
        );
    }
}

/// R13: result lines say, beside `row`, the physical line the record starts on.
#[test]
fn result_lines_carry_the_line_the_record_starts_on() {
    let ws = Workspace::new();
    ws.write(
        "in.csv",
        "name,email\nAnn,a@x.io\n\"Two\nLines\",t@x.io\n\nNo Contact,\nCat,c@x.io,extra\nDan,d@x.io\n",
    );
    ws.write("job.yaml", job("{type: csv, path: in.csv}", NAME_EMAIL));
    let out = run(run_cmd(&ws, &["run", "job.yaml"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let dir = run_dir(&ws);
    let line_of = |file: &str| -> Vec<(u64, u64)> {
        jsonl(&dir.join(file))
            .iter()
            .map(|v| (v["row"].as_u64().unwrap(), v["line"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(line_of("created.jsonl"), vec![(1, 2), (2, 3), (5, 8)]);
    assert_eq!(line_of("rejected.jsonl"), vec![(3, 6), (4, 7)]);
    // `line` stands right after `row`.
    let first = std::fs::read_to_string(dir.join("rejected.jsonl")).unwrap();
    assert!(
        first.starts_with("{\"row\":3,\"line\":6,\"errors\""),
        "{first}"
    );

    // A retry's result lines keep the line of the original source.
    let out = run(run_cmd(
        &ws,
        &["retry", dir.to_str().unwrap(), "--only", "rejected"],
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let dirs = crate::common::run_dirs(&ws.path("runs/t"));
    let retry_dir = dirs.iter().find(|d| **d != dir).unwrap();
    let retried = jsonl(&retry_dir.join("rejected.jsonl"));
    assert_eq!(
        (retried[0]["row"].as_u64(), retried[0]["line"].as_u64()),
        (Some(3), Some(6))
    );

    ws.write(
        "in.jsonl",
        "{\"name\":\"Ann\",\"email\":\"a@x.io\"}\n\n{\"name\":\"Bob\"}\n",
    );
    ws.write("job.yaml", job("{type: jsonl, path: in.jsonl}", NAME_EMAIL));
    let out = run(run_cmd(&ws, &["run", "job.yaml", "--run-dir", "runs/j"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let rejected = jsonl(&ws.path("runs/j/rejected.jsonl"));
    assert_eq!(
        (rejected[0]["row"].as_u64(), rejected[0]["line"].as_u64()),
        (Some(2), Some(3))
    );
    let created = jsonl(&ws.path("runs/j/created.jsonl"));
    assert_eq!(created[0]["line"], 1);
}
