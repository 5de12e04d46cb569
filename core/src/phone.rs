//! Phone numbers to E.164 with the `phonenumber` crate (libphonenumber's metadata). WhatsApp
//! gives digits without `+` (`wa_id`), CRM users type national formats; both must land on the
//! same lead, so a number that does not parse as national in the user's default region is
//! tried again as international.

use phonenumber::{Mode, country};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NormalizedPhone {
    /// `+5511987654321`
    pub e164: String,
    /// ISO 3166 alpha-2 region of the number, e.g. `BR`.
    pub country: Option<String>,
    /// Country calling code, e.g. 55.
    pub country_code: u16,
    /// The national significant number.
    pub national: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("unknown region {0:?}; use an ISO 3166 alpha-2 code such as BR")]
    UnknownRegion(String),
    #[error("not a phone number")]
    NotANumber,
    #[error("not a valid phone number for its region")]
    Invalid,
}

pub fn parse_region(region: &str) -> Result<country::Id, PhoneError> {
    region
        .trim()
        .to_ascii_uppercase()
        .parse::<country::Id>()
        .map_err(|_| PhoneError::UnknownRegion(region.to_string()))
}

/// Normalises `input` to E.164, reading national formats in `default_region`.
pub fn normalize(input: &str, default_region: Option<&str>) -> Result<NormalizedPhone, PhoneError> {
    let region = default_region.map(parse_region).transpose()?;
    let trimmed = input.trim();
    let digits = trimmed.chars().filter(char::is_ascii_digit).count();
    if !(5..=17).contains(&digits) {
        return Err(PhoneError::NotANumber);
    }
    if trimmed
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().\u{a0}/".contains(c)))
    {
        return Err(PhoneError::NotANumber);
    }
    let mut candidates: Vec<(Option<country::Id>, String)> = vec![(region, trimmed.to_string())];
    if !trimmed.starts_with('+') {
        let bare: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        candidates.push((None, format!("+{bare}")));
    }
    let mut saw_parse = false;
    for (region, text) in candidates {
        let Ok(number) = phonenumber::parse(region, &text) else {
            continue;
        };
        saw_parse = true;
        if !phonenumber::is_valid(&number) {
            continue;
        }
        return Ok(NormalizedPhone {
            e164: number.format().mode(Mode::E164).to_string(),
            country: number.country().id().map(|id| format!("{id:?}")),
            country_code: number.code().value(),
            national: number.national().value().to_string(),
        });
    }
    // WhatsApp's own spellings libphonenumber refuses (Mexico's `+52 1…`, a Brazilian mobile
    // without its ninth digit) are the same numbers in their modern form.
    let key = contact_key(trimmed, default_region);
    if key.placed
        && let Ok(number) = phonenumber::parse(None, &key.key)
    {
        return Ok(NormalizedPhone {
            e164: key.key,
            country: number.country().id().map(|id| format!("{id:?}")),
            country_code: key.country_code,
            national: key.national,
        });
    }
    Err(if saw_parse {
        PhoneError::Invalid
    } else {
        PhoneError::NotANumber
    })
}

/// Who a contact is, for matching leads and conversations: one canonical key per person
/// whatever spelling WhatsApp or the CRM used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContactKey {
    /// `+` and digits: the modern E.164 form when the number can be placed (Mexico without
    /// the old mobile `1`, Brazilian mobiles with the ninth digit, Argentine mobiles as
    /// `+549…`), else the digits as given.
    pub key: String,
    /// Country calling code (0 when the number could not be placed).
    pub country_code: u16,
    /// National significant number of `key` (all its digits when it could not be placed).
    pub national: String,
    /// Whether libphonenumber placed the number (valid for its region once the conventions
    /// below were applied).
    pub placed: bool,
}

/// WhatsApp's own spellings of a number, rewritten to the modern E.164 digits (country code
/// included, no `+`). libphonenumber alone rejects or misreads them:
/// - Mexico: WhatsApp ids keep the mobile `1` dropped from the numbering plan in 2019
///   (`52 1 55 1234 5678` is `52 55 1234 5678`);
/// - Brazil: accounts created before the ninth mobile digit keep an id without it (area code
///   plus 8 digits starting 6–9 is a mobile: `55 11 8765 4321` is `55 11 98765 4321`);
/// - Argentina: mobiles are `54 9` + area + number internationally; a number written without
///   the 9 (`54 11 1234 5678`, as the CRM often has it) is the same line.
pub fn whatsapp_digits(digits: &str) -> String {
    let b = digits.as_bytes();
    if digits.len() == 13 && digits.starts_with("521") {
        return format!("52{}", &digits[3..]);
    }
    if digits.len() == 12 && digits.starts_with("55") && (b'6'..=b'9').contains(&b[4]) {
        return format!("{}9{}", &digits[..4], &digits[4..]);
    }
    if digits.len() == 12 && digits.starts_with("54") && !digits.starts_with("549") {
        return format!("549{}", &digits[2..]);
    }
    digits.to_string()
}

/// The ASCII digits of `s`, in order (a number however it was written: `+1 555-078-3881`).
pub fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The contact key of a number: a WhatsApp id (`wa_id`, `+digits`) or a number a CRM user
/// typed (national formats read in `default_region`). Never fails: a number libphonenumber
/// cannot place is keyed by its digits as given, so its messages still get a lead and a
/// conversation.
///
/// Remembered ([`Memo`]): libphonenumber takes microseconds a key, and the drain keys each
/// sender of a step up to three times (its lane, its batch, the leads it may match), for the
/// same contacts that answer again and again.
pub fn contact_key(input: &str, default_region: Option<&str>) -> ContactKey {
    // Phone fields typed in a CRM can hold anything; only what may be a number is kept, so
    // the memo's size stays bounded in bytes as well as in keys.
    if input.len() > Memo::LONGEST_INPUT {
        return compute_contact_key(input, default_region);
    }
    let region = default_region.unwrap_or("");
    if let Some(k) = MEMO.lock().expect("memo").get(region, input) {
        return k;
    }
    let k = compute_contact_key(input, default_region);
    MEMO.lock().expect("memo").insert(region, input, k.clone());
    k
}

/// Contact keys computed lately, by default region and input: two generations of at most
/// [`Memo::GENERATION`] keys each; when the current one is full it becomes the previous one
/// and the older is dropped, so memory is bounded and the keys in use stay. A key depends only
/// on the input, the region and libphonenumber's metadata, which is built in: it never goes
/// stale.
struct Memo {
    current: HashMap<String, HashMap<String, ContactKey>>,
    previous: HashMap<String, HashMap<String, ContactKey>>,
    len: usize,
}

static MEMO: LazyLock<Mutex<Memo>> = LazyLock::new(|| {
    Mutex::new(Memo {
        current: HashMap::new(),
        previous: HashMap::new(),
        len: 0,
    })
});

impl Memo {
    const GENERATION: usize = 50_000;
    /// Inputs longer than this are keyed each time, not remembered.
    const LONGEST_INPUT: usize = 64;

    fn get(&mut self, region: &str, input: &str) -> Option<ContactKey> {
        if let Some(k) = self.current.get(region).and_then(|m| m.get(input)) {
            return Some(k.clone());
        }
        let k = self
            .previous
            .get(region)
            .and_then(|m| m.get(input))?
            .clone();
        self.insert(region, input, k.clone());
        Some(k)
    }

    fn insert(&mut self, region: &str, input: &str, key: ContactKey) {
        if self.len >= Self::GENERATION {
            self.previous = std::mem::take(&mut self.current);
            self.len = 0;
        }
        let by_input = match self.current.get_mut(region) {
            Some(m) => m,
            None => self.current.entry(region.to_string()).or_default(),
        };
        if by_input.insert(input.to_string(), key).is_none() {
            self.len += 1;
        }
    }
}

fn compute_contact_key(input: &str, default_region: Option<&str>) -> ContactKey {
    let region = default_region.and_then(|r| parse_region(r).ok());
    let trimmed = input.trim();
    // A WhatsApp id that is not a phone number (`<id>@lid`: WhatsApp Web names many contacts
    // by a linked identity instead of their number) is its own key; its digits are no number.
    if trimmed.contains('@') {
        return ContactKey {
            key: trimmed.to_string(),
            country_code: 0,
            national: String::new(),
            placed: false,
        };
    }
    let digits = digits_of(trimmed);
    // International digit strings the input may stand for, most specific first.
    let mut candidates: Vec<String> = Vec::new();
    if !trimmed.starts_with('+')
        && region.is_some()
        && let Ok(n) = phonenumber::parse(region, trimmed)
    {
        candidates.push(format!("{}{}", n.code().value(), n.national().value()));
    }
    if !digits.is_empty() {
        candidates.push(digits.clone());
    }
    for c in &candidates {
        for d in [whatsapp_digits(c), c.clone()] {
            let Ok(n) = phonenumber::parse(None, format!("+{d}")) else {
                continue;
            };
            if !phonenumber::is_valid(&n) {
                continue;
            }
            // A valid number may still be an old WhatsApp spelling (an 8-digit Brazilian
            // mobile some metadata accepts): the conventions always apply.
            let e164 = digits_of(&n.format().mode(Mode::E164).to_string());
            let modern = whatsapp_digits(&e164);
            if modern != e164
                && let Ok(m) = phonenumber::parse(None, format!("+{modern}"))
                && phonenumber::is_valid(&m)
            {
                return placed(&m);
            }
            return placed(&n);
        }
    }
    ContactKey {
        key: if digits.is_empty() {
            trimmed.to_string()
        } else {
            format!("+{digits}")
        },
        country_code: 0,
        national: digits,
        placed: false,
    }
}

fn placed(n: &phonenumber::PhoneNumber) -> ContactKey {
    ContactKey {
        key: n.format().mode(Mode::E164).to_string(),
        country_code: n.code().value(),
        national: n.national().value().to_string(),
        placed: true,
    }
}

/// The digit strings a CRM user may have typed for `key` (national with and without trunk
/// prefix, international with and without `00`, and each country's older spellings), to find
/// leads stored in another format by their digits.
pub fn spellings(key: &ContactKey) -> Vec<String> {
    let (cc, nat) = (key.country_code, key.national.as_str());
    if !key.placed {
        return if nat.is_empty() {
            Vec::new()
        } else {
            vec![nat.to_string()]
        };
    }
    let mut nationals = vec![nat.to_string()];
    let mut out = Vec::new();
    match cc {
        // Mexico: the mobile 1 (international) and the 044/045 mobile prefixes (national).
        52 if nat.len() == 10 => {
            nationals.push(format!("1{nat}"));
            out.push(format!("044{nat}"));
            out.push(format!("045{nat}"));
        }
        // Brazil: the mobile without its ninth digit.
        55 if nat.len() == 11 && nat.as_bytes()[2] == b'9' => {
            nationals.push(format!("{}{}", &nat[..2], &nat[3..]));
        }
        // Argentina: the mobile without its 9, and the national form with 15 after the area
        // code (areas have 2 to 4 digits).
        54 if nat.len() == 11 && nat.starts_with('9') => {
            let ten = &nat[1..];
            nationals.push(ten.to_string());
            for area in 2..=4 {
                let (a, local) = ten.split_at(area);
                out.push(format!("0{a}15{local}"));
                out.push(format!("{a}15{local}"));
            }
        }
        _ => {}
    }
    for n in &nationals {
        out.push(n.clone());
        out.push(format!("0{n}"));
        out.push(format!("{cc}{n}"));
        out.push(format!("00{cc}{n}"));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_keys_are_the_computed_ones_per_region() {
        for _ in 0..2 {
            for (input, region) in [
                ("(11) 98765-4321", Some("BR")),
                ("(11) 98765-4321", None),
                ("(11) 98765-4321", Some("MX")),
                ("5511987654321", None),
                ("+52 1 55 1234 5678", Some("BR")),
            ] {
                assert_eq!(
                    contact_key(input, region),
                    compute_contact_key(input, region),
                    "{input} in {region:?}"
                );
            }
        }
    }

    #[test]
    fn long_inputs_are_keyed_but_not_remembered() {
        let long = format!("+55 11 98765-4321 {}", "x".repeat(Memo::LONGEST_INPUT));
        assert_eq!(contact_key(&long, None), compute_contact_key(&long, None));
        assert_eq!(MEMO.lock().unwrap().get("", &long), None);
    }

    #[test]
    fn the_memo_keeps_two_generations_at_most() {
        let mut memo = Memo {
            current: HashMap::new(),
            previous: HashMap::new(),
            len: 0,
        };
        let key = |n: usize| ContactKey {
            key: format!("+{n}"),
            country_code: 0,
            national: n.to_string(),
            placed: false,
        };
        for n in 0..Memo::GENERATION {
            memo.insert("", &n.to_string(), key(n));
        }
        // The generation is full: the next key starts a new one, the old one is kept behind.
        memo.insert("BR", "x", key(0));
        assert_eq!(memo.len, 1);
        // A key of the previous generation is still found, and moves to the current one.
        assert_eq!(memo.get("", "7"), Some(key(7)));
        assert_eq!(memo.len, 2);
        assert_eq!(memo.get("BR", "7"), None);
        for n in 0..Memo::GENERATION {
            memo.insert("", &format!("new{n}"), key(n));
        }
        // Two rollovers later the first generation is gone, except what was used meanwhile.
        let held: usize = memo
            .current
            .values()
            .chain(memo.previous.values())
            .map(HashMap::len)
            .sum();
        assert!(held <= 2 * Memo::GENERATION, "{held} keys held");
        assert_eq!(memo.get("", "8"), None);
        assert_eq!(memo.get("", "new0"), Some(key(0)));
    }

    #[test]
    fn a_linked_identity_is_its_own_key() {
        let k = contact_key("203741234567890@lid", Some("BR"));
        assert_eq!(k.key, "203741234567890@lid");
        assert!(!k.placed);
        assert!(spellings(&k).is_empty());
    }

    #[test]
    fn brazilian_forms_meet() {
        for input in ["+55 11 98765-4321", "5511987654321", "(11) 98765-4321"] {
            let n = normalize(input, Some("BR")).unwrap();
            assert_eq!(n.e164, "+5511987654321", "{input}");
            assert_eq!(n.country.as_deref(), Some("BR"));
            assert_eq!(n.country_code, 55);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(normalize("hello", Some("BR")), Err(PhoneError::NotANumber));
        assert_eq!(normalize("12", None), Err(PhoneError::NotANumber));
        assert!(matches!(
            normalize("+55 11", Some("BR")),
            Err(PhoneError::NotANumber)
        ));
        assert_eq!(normalize("+1 555 000", None), Err(PhoneError::Invalid));
        assert!(matches!(
            normalize("+5511987654321", Some("XX")),
            Err(PhoneError::UnknownRegion(_))
        ));
    }

    #[test]
    fn whatsapp_spellings_are_valid_numbers() {
        let n = normalize("+52 1 55 1234 5678", None).unwrap();
        assert_eq!(
            (n.e164.as_str(), n.country.as_deref()),
            ("+525512345678", Some("MX"))
        );
        assert_eq!(
            normalize("551187654321", None).unwrap().e164,
            "+5511987654321"
        );
    }

    #[test]
    fn international_without_region() {
        assert_eq!(
            normalize("+1 650-253-0000", None).unwrap().e164,
            "+16502530000"
        );
        assert_eq!(normalize("16502530000", None).unwrap().e164, "+16502530000");
    }
    #[test]
    fn whatsapp_conventions_meet_on_one_key() {
        // (input, region, key, placed)
        let cases: &[(&str, Option<&str>, &str, bool)] = &[
            // Mexico: the wa_id keeps the old mobile 1.
            ("+5215512345678", None, "+525512345678", true),
            ("5215512345678", Some("MX"), "+525512345678", true),
            ("+52 55 1234 5678", None, "+525512345678", true),
            ("55 1234 5678", Some("MX"), "+525512345678", true),
            // Argentina: 549 wa_ids, leads typed with 15 or without the 9.
            ("+5491112345678", None, "+5491112345678", true),
            ("011 15-1234-5678", Some("AR"), "+5491112345678", true),
            ("+54 11 1234-5678", None, "+5491112345678", true),
            ("0351 15-456-7890", Some("AR"), "+5493514567890", true),
            // Brazil: with and without the ninth digit.
            ("+5511987654321", None, "+5511987654321", true),
            ("+551187654321", None, "+5511987654321", true),
            ("(11) 8765-4321", Some("BR"), "+5511987654321", true),
            ("(11) 98765-4321", Some("BR"), "+5511987654321", true),
            // A Brazilian landline (8 digits starting 2-5) keeps its 8 digits.
            ("+551132654321", None, "+551132654321", true),
            // US/Canada, Portugal, Spain: libphonenumber as is.
            ("+1 650-253-0000", None, "+16502530000", true),
            ("+1 416 555 0199", None, "+14165550199", true),
            ("+351912345678", None, "+351912345678", true),
            ("+34 612 34 56 78", None, "+34612345678", true),
            // Unplaceable: the digits as given.
            ("+999123456789", None, "+999123456789", false),
            ("+15550001", None, "+15550001", false),
        ];
        for (input, region, key, placed) in cases {
            let k = contact_key(input, *region);
            assert_eq!(k.key, *key, "{input} ({region:?})");
            assert_eq!(k.placed, *placed, "{input} ({region:?})");
        }
    }

    #[test]
    fn spellings_cover_other_formats() {
        // (key, a spelling's digits that must be looked up)
        let cases: &[(&str, &str)] = &[
            ("+525512345678", "5215512345678"),
            ("+525512345678", "5512345678"),
            ("+525512345678", "0445512345678"),
            ("+5491112345678", "0111512345678"),
            ("+5491112345678", "541112345678"),
            ("+5491112345678", "1112345678"),
            ("+5493514567890", "03511545678 90"),
            ("+5511987654321", "1187654321"),
            ("+5511987654321", "551187654321"),
            ("+5511987654321", "011987654321"),
            ("+16502530000", "16502530000"),
            ("+999123456789", "999123456789"),
        ];
        for (key, typed) in cases {
            let k = contact_key(key, None);
            let typed: String = typed.chars().filter(char::is_ascii_digit).collect();
            assert!(
                spellings(&k).contains(&typed),
                "{key}: {typed} not in {:?}",
                spellings(&k)
            );
        }
    }
}
