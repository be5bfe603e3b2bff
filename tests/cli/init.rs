//! `cdpjob init --from FILE` as a new user runs it: on an English CSV, a CSV with Chinese
//! headers and a workbook, the job it writes validates and `plan` on it maps the obvious
//! fields. The written text is pinned (tests/cli/snapshots/): it is what the user edits.

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
use serde_json::{Value, json};

use crate::common::{Output, Workspace, run};

fn cdpjob(ws: &Workspace, args: &[&str]) -> Output {
    run(ws.cmd(args))
}

/// `init --from FILE --out job.yaml`, then `validate` and `plan --json` of what it wrote:
/// the job's text and the plan.
#[track_caller]
fn init_then_plan(ws: &Workspace, file: &str) -> (String, Value) {
    let out = cdpjob(ws, &["init", "--from", file, "--out", "job.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("next: cdpjob plan job.yaml"),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(ws.path("job.yaml")).unwrap();
    let out = cdpjob(ws, &["validate", "job.yaml"]);
    assert_eq!(
        out.code, 0,
        "the written job validates:\n{}\n{text}",
        out.stderr
    );
    let out = cdpjob(ws, &["plan", "--json", "job.yaml"]);
    assert_eq!(out.code, 0, "{}\n{text}", out.stderr);
    (text, serde_json::from_str(&out.stdout).unwrap())
}

#[track_caller]
fn snapshot(name: &str, text: &str) {
    insta::with_settings!({omit_expression => true}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn an_english_csv_with_semicolons() {
    let ws = Workspace::new();
    ws.write(
        "Leads 2024.csv",
        "Name;Mobile;E-mail;Birthday;Gender;Country;Company;Notes\n\
         Ann Lee;+44 7700 900123; Ann@Example.com ;31/01/1990;Female;GB;Acme, Ltd;met at the fair\n\
         Bob Ray;07700 900456;bob@example.com;02/12/1985;Male;GB;Initech;\n\
         Cy Moss;+44 7700 900789;cy@example.com;;male;GB;;\n",
    );
    let (text, p) = init_then_plan(&ws, "Leads 2024.csv");
    snapshot("init_english_csv", &text);
    assert_eq!(p["counts"]["valid"], 3, "{p}");
    assert_eq!(
        p["preview"][0]["customer"],
        json!({
            "full_name": "Ann Lee",
            "sms_phone": "447700900123",
            "country": "GB",
            "email": "ann@example.com",
            "birthday": "1990-01-31",
            "remark": "met at the fair",
            "gender": 0,
        })
    );
    assert_eq!(p["preview"][1]["customer"]["sms_phone"], "447700900456");
    assert_eq!(p["preview"][1]["customer"]["gender"], 1);
    assert!(text.contains("name: leads-2024\n"), "{text}");
}

#[test]
fn a_csv_with_chinese_headers() {
    let ws = Workspace::new();
    ws.write(
        "data/客户名单.csv",
        "姓名,手机,邮箱,生日,性别,国家,备注,标签,公司\n\
         王芳,138 1234 5678,wf@example.com,1990年01月31日,女,CN,老客户,vip|华东,甲公司\n\
         李雷,+86 139-0000-1111,ll@example.com,1985年12月02日,男,CN,,新客,乙公司\n",
    );
    let (text, p) = init_then_plan(&ws, "data/客户名单.csv");
    snapshot("init_chinese_csv", &text);
    assert!(text.contains("path: \"data/客户名单.csv\""), "{text}");
    assert_eq!(p["counts"]["valid"], 2, "{p}");
    assert_eq!(
        p["preview"][0]["customer"],
        json!({
            "full_name": "王芳",
            "sms_phone": "8613812345678",
            "country": "CN",
            "email": "wf@example.com",
            "birthday": "1990-01-31",
            "tagStr": "vip,华东",
            "remark": "老客户",
            "gender": 0,
        })
    );
    assert_eq!(p["preview"][1]["customer"]["sms_phone"], "8613900001111");
}

#[test]
fn a_workbook() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name("客户").unwrap();
    for (c, h) in [
        "Full Name",
        "WhatsApp",
        "Email",
        "DOB",
        "Phone Number",
        "City",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (r, (name, wa, dob)) in [
        ("Wang Fang", 8613812345678.0, (1990, 1, 31)),
        ("Li Lei", 8613900001111.0, (1985, 12, 2)),
    ]
    .into_iter()
    .enumerate()
    {
        let r = r as u32 + 1;
        sheet.write_string(r, 0, name).unwrap();
        sheet.write_number(r, 1, wa).unwrap();
        sheet
            .write_string(r, 2, format!("{}@example.com", r))
            .unwrap();
        let d = ExcelDateTime::from_ymd(dob.0, dob.1, dob.2).unwrap();
        sheet.write_datetime_with_format(r, 3, &d, &date).unwrap();
        sheet
            .write_number(r, 4, 13800000000.0 + f64::from(r))
            .unwrap();
        sheet.write_string(r, 5, "Shanghai").unwrap();
    }
    book.save(ws.path("crm.xlsx")).unwrap();
    let (text, p) = init_then_plan(&ws, "crm.xlsx");
    snapshot("init_xlsx", &text);
    assert_eq!(p["counts"]["valid"], 2, "{p}");
    assert_eq!(
        p["preview"][0]["customer"],
        json!({
            "full_name": "Wang Fang",
            "sms_phone": "8613800000001",
            "whats_app_phone": "8613812345678",
            "email": "1@example.com",
            "birthday": "1990-01-31",
        })
    );
}

/// An existing job is never replaced without `--force`; `--out -` prints the job.
#[test]
fn init_never_overwrites_a_job_unless_forced() {
    let ws = Workspace::new();
    ws.write("leads.csv", "name,phone\nAnn,13812345678\n");
    ws.write("leads.yaml", "# my own job\n");
    let out = cdpjob(&ws, &["init", "--from", "leads.csv"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("leads.yaml exists: init never overwrites a file; pass --force"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(ws.path("leads.yaml")).unwrap(),
        "# my own job\n"
    );
    let out = cdpjob(&ws, &["init", "--from", "leads.csv", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(ws.path("leads.yaml")).unwrap();
    assert!(
        written.contains("sms_phone: \"{{ row.phone | phone(vars.country_code) }}\""),
        "{written}"
    );

    let out = cdpjob(&ws, &["init", "--from", "leads.csv", "--out", "-"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, written, "the same job, on standard output");
    assert!(
        out.stderr.contains("wrote the job to standard output"),
        "{}",
        out.stderr
    );

    let out = cdpjob(&ws, &["init", "--from", "leads.parquet"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("init reads .csv"), "{}", out.stderr);
}

/// JSON Lines: a key missing from some objects renders empty, a list of tags is joined.
#[test]
fn a_json_lines_file() {
    let ws = Workspace::new();
    ws.write(
        "leads.jsonl",
        "{\"name\":\"Ann\",\"phone\":\"13812345678\",\"tags\":[\"vip\",\"east\"],\"city\":\"SH\"}\n\
         {\"name\":\"Bob\",\"email\":\"B@x.io\",\"dob\":\"1990-01-02\"}\n",
    );
    let (text, p) = init_then_plan(&ws, "leads.jsonl");
    assert!(text.contains("#   \"city\"  e.g. \"SH\""), "{text}");
    assert_eq!(p["counts"]["valid"], 2, "{p}\n{text}");
    assert_eq!(
        p["preview"][0]["customer"],
        json!({"full_name": "Ann", "sms_phone": "8613812345678", "tagStr": "vip,east"})
    );
    assert_eq!(
        p["preview"][1]["customer"],
        json!({"full_name": "Bob", "email": "b@x.io", "birthday": "1990-01-02"})
    );
}

#[test]
fn a_gbk_csv_with_chinese_headers() {
    let ws = Workspace::new();
    let mut text = String::from("姓名,手机,邮箱,城市,备注\n");
    let names = [
        "王芳", "李雷", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄丽", "周杰", "吴刚",
    ];
    let cities = ["北京", "上海", "广州", "深圳", "杭州", "南京"];
    for i in 0..60 {
        text.push_str(&format!(
            "{},1380000{:04},c{i}@example.com,{},老客户，每月联系一次\n",
            names[i % names.len()],
            i,
            cities[i % cities.len()]
        ));
    }
    let (bytes, _, _) = encoding_rs::GBK.encode(&text);
    ws.write("客户.csv", bytes.as_ref());
    let (job, p) = init_then_plan(&ws, "客户.csv");
    assert!(job.contains("encoding: gbk"), "{job}");
    assert_eq!(p["counts"]["valid"], 60, "{p}");
    assert_eq!(p["preview"][0]["customer"]["full_name"], "王芳", "{p}");
    assert_eq!(
        p["preview"][0]["customer"]["sms_phone"], "8613800000000",
        "{p}"
    );
}

/// A French list saved by Excel on Windows: Windows-1252, which `source.encoding` has no
/// label for. init names `auto` (which picks Windows-1252 again), reads its header and
/// values through it, and the job it writes reads every row with its accents.
#[test]
fn a_windows_1252_csv_is_read_as_auto() {
    let ws = Workspace::new();
    let mut text = String::from("Prénom;Nom;Téléphone;Email;Société\n");
    let names = ["Hélène", "José", "Françoise", "Jérôme", "Zoé", "Grégoire"];
    for i in 0..60 {
        text.push_str(&format!(
            "{};Müller-Lefèvre;+33 6 12 34 {:02} {:02};c{i}@exemple.fr;Crème & Brûlée SARL\n",
            names[i % names.len()],
            i / 10,
            i % 100
        ));
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    ws.write("clients.csv", bytes.as_ref());
    let (job, p) = init_then_plan(&ws, "clients.csv");
    assert!(job.contains("encoding: auto"), "{job}");
    assert_eq!(p["source_text"]["encoding"], "windows-1252", "{p}");
    assert_eq!(p["counts"]["valid"], 60, "{p}");
    assert_eq!(p["counts"]["rejected"], 0, "{p}");
    assert_eq!(p["preview"][0]["customer"]["full_name"], "Hélène", "{p}");
    assert_eq!(p["preview"][0]["customer"]["email"], "c0@exemple.fr", "{p}");
}

/// A workbook with a title above its header ("Customer list" in A1, a blank row, the
/// header in row 3): init takes row 3 as the header, writes `header_row: 3`, maps its
/// columns, and the job validates and reads every row.
#[test]
fn a_workbook_with_a_title_above_its_header() {
    let ws = Workspace::new();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Customer list").unwrap();
    sheet.write_string(1, 0, "exported 2024-05-01").unwrap();
    for (c, h) in ["Name", "Mobile", "Email"].iter().enumerate() {
        sheet.write_string(3, c as u16, *h).unwrap();
    }
    for r in 4..14u32 {
        sheet.write_string(r, 0, format!("Lead {r}")).unwrap();
        sheet
            .write_number(r, 1, 13800000000.0 + f64::from(r))
            .unwrap();
        if r % 2 == 0 {
            sheet
                .write_string(r, 2, format!("l{r}@example.com"))
                .unwrap();
        }
    }
    book.save(ws.path("list.xlsx")).unwrap();
    let out = cdpjob(&ws, &["init", "--from", "list.xlsx", "--out", "-"]);
    assert!(out.stderr.contains("header row 4"), "{}", out.stderr);
    let (text, p) = init_then_plan(&ws, "list.xlsx");
    assert!(text.contains("header_row: 4"), "{text}");
    assert!(
        text.contains("sms_phone:") && text.contains("email:"),
        "{text}"
    );
    assert_eq!(p["counts"]["rows"], 10, "{p}");
    assert_eq!(p["counts"]["valid"], 10, "{p}");
    assert_eq!(p["preview"][0]["customer"]["full_name"], "Lead 4", "{p}");
}
