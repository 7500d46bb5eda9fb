//! The one rule for every name a person gives something (a workspace, an agent, an API
//! token, a knowledge-base document, a contact) and the smaller rule for free text
//! (instructions, greetings, notes).
//!
//! A [`Name`] is NFC-normalised and trimmed, holds no control character (NUL, line breaks,
//! U+2028/U+2029 included), no bidirectional override, embedding, isolate or mark
//! (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C: they make `exe.txt` display as
//! `txt.exe` and can make two different names look alike), and no zero-width character
//! (U+200B–U+200D, U+2060, U+FEFF), and is 1 to `max` characters long (Unicode scalar
//! values after normalisation, never bytes). [`check_text`] keeps line breaks and tabs
//! but refuses NUL and the other control characters, which no text needs and which
//! PostgreSQL cannot store.
//!
//! Why here: both programs take names from people (the control plane's forms and API,
//! the node's console), and one rule keeps them saying the same thing.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// A name that passed [`Name::parse`]: normalised, trimmed, within its limit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a name was refused; [`NameError::message`] says it in words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Nothing but spaces.
    Empty,
    /// Longer than the limit, in characters.
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A control character (NUL, a line break, a tab…).
    Control,
    /// A bidirectional override, isolate or mark.
    Bidi,
    /// A zero-width character.
    ZeroWidth,
}

/// Why a free text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    /// A NUL byte or another control character that is not a line break or a tab.
    Control,
    /// Longer than the limit, in characters.
    TooLong {
        /// The limit.
        max: usize,
    },
}

/// What a forbidden character in a name is, if it is one.
pub fn forbidden_in_name(c: char) -> Option<NameError> {
    match c {
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{061C}' => Some(NameError::Bidi),
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => Some(NameError::ZeroWidth),
        '\u{2028}' | '\u{2029}' => Some(NameError::Control),
        c if c.is_control() => Some(NameError::Control),
        _ => None,
    }
}

impl Name {
    /// Checks and normalises `raw` as a name of at most `max` characters.
    pub fn parse(raw: &str, max: usize) -> Result<Name, NameError> {
        // Refuse before normalising, so a character NFC would fold away still counts.
        let mut worst = None;
        for c in raw.chars() {
            if let Some(e) = forbidden_in_name(c) {
                // Control characters first: a NUL is the clearest thing to tell.
                if e == NameError::Control {
                    return Err(e);
                }
                worst.get_or_insert(e);
            }
        }
        if let Some(e) = worst {
            return Err(e);
        }
        let nfc: String = raw.nfc().collect();
        let name = nfc.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > max {
            return Err(NameError::TooLong { max });
        }
        Ok(Name(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl NameError {
    /// The refusal in words, for a field called `what` ("The agent name").
    pub fn message(&self, what: &str) -> String {
        match self {
            NameError::Empty => format!("{what} must not be empty."),
            NameError::TooLong { max } => format!("{what} must be at most {max} characters."),
            NameError::Control => format!(
                "{what} must not contain control characters (a line break, a tab or a NUL byte)."
            ),
            NameError::Bidi => format!(
                "{what} must not contain characters that change the text direction \
                 (such as U+202E); they can make one name look like another."
            ),
            NameError::ZeroWidth => {
                format!("{what} must not contain invisible zero-width characters (such as U+200B).")
            }
        }
    }

    /// A short stable word for the rule that failed (for tests and logs).
    pub fn rule(&self) -> &'static str {
        match self {
            NameError::Empty => "empty",
            NameError::TooLong { .. } => "too_long",
            NameError::Control => "control_character",
            NameError::Bidi => "bidi_control",
            NameError::ZeroWidth => "zero_width",
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("The name"))
    }
}

impl std::error::Error for NameError {}

/// Checks a free text (several lines allowed) of at most `max` characters: no NUL and
/// no control character but `\n`, `\r` and `\t`.
pub fn check_text(s: &str, max: usize) -> Result<(), TextError> {
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(TextError::Control);
    }
    if s.chars().count() > max {
        return Err(TextError::TooLong { max });
    }
    Ok(())
}

impl TextError {
    /// The refusal in words, for a field called `what` ("The greeting").
    pub fn message(&self, what: &str) -> String {
        match self {
            TextError::Control => format!(
                "{what} must not contain control characters such as a NUL byte \
                 (line breaks and tabs are fine)."
            ),
            TextError::TooLong { max } => format!("{what} must be at most {max} characters."),
        }
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message("The text"))
    }
}

impl std::error::Error for TextError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_names_from_the_issue_are_refused_with_their_rule() {
        assert_eq!(Name::parse("a\u{0000}b", 80), Err(NameError::Control));
        assert_eq!(Name::parse("\u{202e}abc\u{200b}", 80), Err(NameError::Bidi));
        assert_eq!(Name::parse("abc\u{200b}", 80), Err(NameError::ZeroWidth));
        assert_eq!(Name::parse("line\nbreak", 80), Err(NameError::Control));
        assert_eq!(Name::parse("a\u{2028}b", 80), Err(NameError::Control));
        assert_eq!(Name::parse("   ", 80), Err(NameError::Empty));
        assert!(NameError::Bidi.message("The agent name").contains("U+202E"));
    }

    #[test]
    fn limits_count_characters_and_names_are_nfc_and_trimmed() {
        // "é" as e + combining acute: two scalar values, one after NFC.
        let decomposed = "Cafe\u{0301}";
        let n = Name::parse(&format!("  {decomposed}  "), 4).expect("a valid name");
        assert_eq!(n.as_str(), "Café");
        // 80 four-byte characters fit a limit of 80 characters (320 bytes).
        let emoji = "😀".repeat(80);
        assert_eq!(
            Name::parse(&emoji, 80).expect("80 characters").as_str(),
            emoji
        );
        assert_eq!(
            Name::parse(&"😀".repeat(81), 80),
            Err(NameError::TooLong { max: 80 })
        );
    }

    #[test]
    fn free_text_keeps_lines_and_refuses_nul() {
        assert!(check_text("Hello,\r\n\tworld", 100).is_ok());
        assert_eq!(check_text("a\u{0}b", 100), Err(TextError::Control));
        assert_eq!(check_text("a\u{7}b", 100), Err(TextError::Control));
        assert_eq!(check_text("ééé", 2), Err(TextError::TooLong { max: 2 }));
    }

    const FORBIDDEN: &[char] = &[
        '\u{0}', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\u{2028}',
        '\u{2029}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
        '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}',
        '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}',
    ];

    /// Names people write: letters and digits of any script, marks, spaces, punctuation,
    /// symbols (emoji included).
    fn valid_name() -> impl Strategy<Value = String> {
        "[\\p{L}\\p{M}\\p{N}\\p{P}\\p{S} ]{1,60}"
            .prop_filter("some visible character", |s| !s.trim().is_empty())
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(raw in valid_name()) {
            let name = Name::parse(&raw, 200).expect("a valid name");
            let expected: String = raw.nfc().collect::<String>().trim().to_owned();
            prop_assert_eq!(name.as_str(), expected.as_str());
            // Parsing a parsed name changes nothing.
            prop_assert_eq!(Name::parse(name.as_str(), 200), Ok(name.clone()));
        }

        #[test]
        fn any_name_with_a_forbidden_character_is_refused(
            raw in valid_name(),
            at in any::<prop::sample::Index>(),
            which in 0..FORBIDDEN.len(),
        ) {
            let mut chars: Vec<char> = raw.chars().collect();
            chars.insert(at.index(chars.len() + 1), FORBIDDEN[which]);
            let bad: String = chars.into_iter().collect();
            let refused = Name::parse(&bad, 200);
            prop_assert!(
                matches!(refused, Err(e) if e != NameError::TooLong { max: 200 }),
                "accepted {:?}",
                bad
            );
        }
    }
}
