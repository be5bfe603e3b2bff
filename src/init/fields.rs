//! Which customer field a column's name means, in English or Chinese (SPEC §8 `init`):
//! `name`/`姓名` is the full name, `mobile`/`手机`/`电话` the SMS phone, `邮箱` the email, and
//! so on. A name is compared without case, spaces, `_`, `-` or `.`, first whole, then by
//! the words it contains (`客户手机号`, `contact_email`), so the usual spellings of a
//! spreadsheet's header land without a list of every one.

use crate::customer::Field;

/// Whole names, after [`normalize`].
const NAMES: &[(Field, &[&str])] = &[
    (
        Field::FullName,
        &[
            "name",
            "fullname",
            "customername",
            "contactname",
            "clientname",
            "username",
            "姓名",
            "名字",
            "全名",
            "客户姓名",
            "客户名称",
            "客户名",
            "联系人",
            "名称",
        ],
    ),
    (
        Field::FirstName,
        &["firstname", "givenname", "first", "forename", "名"],
    ),
    (
        Field::LastName,
        &["lastname", "surname", "familyname", "last", "姓"],
    ),
    (
        Field::WhatsAppPhone,
        &[
            "whatsapp",
            "whatsappphone",
            "whatsappnumber",
            "wa",
            "wanumber",
        ],
    ),
    (
        Field::SmsPhone,
        &[
            "phone",
            "mobile",
            "mobilephone",
            "cell",
            "cellphone",
            "tel",
            "telephone",
            "phonenumber",
            "mobilenumber",
            "smsphone",
            "sms",
            "手机",
            "手机号",
            "手机号码",
            "电话",
            "电话号码",
            "联系电话",
            "联系方式",
            "移动电话",
        ],
    ),
    (Field::ViberPhone, &["viber", "viberphone", "vibernumber"]),
    (
        Field::Email,
        &[
            "email",
            "mail",
            "emailaddress",
            "邮箱",
            "电子邮箱",
            "电子邮件",
            "邮件",
            "邮箱地址",
        ],
    ),
    (
        Field::Birthday,
        &[
            "birthday",
            "birthdate",
            "dateofbirth",
            "dob",
            "birth",
            "生日",
            "出生日期",
            "出生年月日",
        ],
    ),
    (Field::Gender, &["gender", "sex", "性别"]),
    (
        Field::Country,
        &[
            "country",
            "nation",
            "countryname",
            "国家",
            "国家/地区",
            "国家地区",
            "国籍",
        ],
    ),
    (
        Field::Address,
        &[
            "address",
            "addr",
            "streetaddress",
            "地址",
            "住址",
            "联系地址",
            "详细地址",
        ],
    ),
    (Field::TimeZone, &["timezone", "tz", "时区"]),
    (
        Field::Remark,
        &[
            "remark", "remarks", "note", "notes", "comment", "comments", "memo", "备注", "说明",
            "描述",
        ],
    ),
    (Field::TagStr, &["tags", "tag", "labels", "label", "标签"]),
    (Field::Messenger, &["messenger", "facebookmessenger"]),
    (Field::Instagram, &["instagram", "ig"]),
    (Field::Zalo, &["zalo"]),
    (Field::Line, &["line", "lineid"]),
];

/// Words a longer name may contain, tried in this order (WhatsApp before phone: a
/// `whatsapp_phone` column is the WhatsApp number).
const WORDS: &[(Field, &[&str])] = &[
    (Field::WhatsAppPhone, &["whatsapp"]),
    (Field::ViberPhone, &["viber"]),
    (Field::Email, &["email", "e-mail", "邮箱", "邮件"]),
    (Field::SmsPhone, &["phone", "mobile", "手机", "电话"]),
    (Field::Birthday, &["birth", "生日", "出生"]),
    (Field::Gender, &["gender", "性别"]),
    (Field::Country, &["country", "国家"]),
    (Field::Address, &["address", "地址"]),
    (Field::Remark, &["remark", "备注"]),
    (Field::TagStr, &["tag", "标签"]),
    (Field::FullName, &["姓名", "名字"]),
];

/// The field a column named `column` means, if any.
pub fn field_of(column: &str) -> Option<Field> {
    let name = normalize(column);
    if name.is_empty() {
        return None;
    }
    if let Some((field, _)) = NAMES
        .iter()
        .find(|(_, names)| names.contains(&name.as_str()))
    {
        return Some(*field);
    }
    WORDS
        .iter()
        .find(|(_, words)| words.iter().any(|w| name.contains(&normalize(w))))
        .map(|(field, _)| *field)
}

/// Lowercase, without spaces (also the ideographic one), `_`, `-` and `.`.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_chinese_names() {
        for (name, field) in [
            ("Name", Field::FullName),
            ("姓名", Field::FullName),
            ("First Name", Field::FirstName),
            ("last_name", Field::LastName),
            ("Mobile", Field::SmsPhone),
            ("手机", Field::SmsPhone),
            ("电话", Field::SmsPhone),
            ("WhatsApp", Field::WhatsAppPhone),
            ("whatsapp_phone", Field::WhatsAppPhone),
            ("E-mail", Field::Email),
            ("邮箱", Field::Email),
            ("DOB", Field::Birthday),
            ("生日", Field::Birthday),
            ("性别", Field::Gender),
            ("国家", Field::Country),
            ("备注", Field::Remark),
            ("标签", Field::TagStr),
            ("客户手机号", Field::SmsPhone),
            ("contact email", Field::Email),
            ("出生年月", Field::Birthday),
        ] {
            assert_eq!(field_of(name), Some(field), "{name}");
        }
    }

    #[test]
    fn names_that_mean_no_field() {
        for name in ["company", "公司", "城市", "id", "", "  "] {
            assert_eq!(field_of(name), None, "{name}");
        }
    }
}
