//! Phone numbers to E.164 with the `phonenumber` crate (libphonenumber's metadata). WhatsApp
//! gives digits without `+` (`wa_id`), CRM users type national formats; both must land on the
//! same lead, so a number that does not parse as national in the user's default region is
//! tried again as international.

use phonenumber::{Mode, country};

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
    Err(if saw_parse {
        PhoneError::Invalid
    } else {
        PhoneError::NotANumber
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn international_without_region() {
        assert_eq!(
            normalize("+1 650-253-0000", None).unwrap().e164,
            "+16502530000"
        );
        assert_eq!(normalize("16502530000", None).unwrap().e164, "+16502530000");
    }
}
