//! The two languages of everything a person reads: Dutch and English.

/// The language of what a person reads (a page, the agent's words for a
/// reason code). Dutch unless the client asks for English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    Nl,
    En,
}

impl Lang {
    /// The BCP 47 tag, as used in `lang` attributes and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    /// The language a page offers to switch to.
    pub fn other(self) -> Lang {
        match self {
            Lang::Nl => Lang::En,
            Lang::En => Lang::Nl,
        }
    }

    /// Chooses between the Dutch and the English form of anything.
    pub fn pick<T>(self, nl: T, en: T) -> T {
        match self {
            Lang::Nl => nl,
            Lang::En => en,
        }
    }
}

