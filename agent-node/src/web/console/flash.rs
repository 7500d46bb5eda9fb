//! "Saved" feedback: after a form posts, the page it returns to says what happened. The
//! handler redirects to `<page>?done=<code>` ([`see_other_done`]); the access guard reads
//! the code into the session ([`Done::from_query`]), and `base.html` shows its fixed
//! sentence. Only these sentences can appear: the query never puts text on a page.

use actix_web::HttpResponse;

/// What a form did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// A form of settings or details was saved.
    Saved,
    /// A note was added to a contact.
    NoteAdded,
    /// A follow-up was added.
    FollowupAdded,
    /// A follow-up was marked done.
    FollowupDone,
    /// A contact was erased.
    Erased,
    /// A document was uploaded.
    Uploaded,
    /// A document or an export was deleted.
    Deleted,
    /// An export started.
    ExportStarted,
    /// A key was removed.
    KeyRemoved,
    /// The retention sweep ran.
    SweepDone,
    /// A website import was queued.
    ImportQueued,
}

impl Done {
    const ALL: [Done; 11] = [
        Done::Saved,
        Done::NoteAdded,
        Done::FollowupAdded,
        Done::FollowupDone,
        Done::Erased,
        Done::Uploaded,
        Done::Deleted,
        Done::ExportStarted,
        Done::KeyRemoved,
        Done::SweepDone,
        Done::ImportQueued,
    ];

    /// The code in the query string.
    pub fn code(self) -> &'static str {
        match self {
            Done::Saved => "saved",
            Done::NoteAdded => "note_added",
            Done::FollowupAdded => "followup_added",
            Done::FollowupDone => "followup_done",
            Done::Erased => "erased",
            Done::Uploaded => "uploaded",
            Done::Deleted => "deleted",
            Done::ExportStarted => "export_started",
            Done::KeyRemoved => "key_removed",
            Done::SweepDone => "sweep_done",
            Done::ImportQueued => "import_queued",
        }
    }

    /// The sentence the page shows.
    pub fn message(self) -> &'static str {
        match self {
            Done::Saved => "Saved.",
            Done::NoteAdded => "Note added.",
            Done::FollowupAdded => "Follow-up added.",
            Done::FollowupDone => "Follow-up marked done.",
            Done::Erased => "Contact erased.",
            Done::Uploaded => "Document added: your agents answer from it now.",
            Done::Deleted => "Deleted.",
            Done::ExportStarted => "Export started: the download appears here when it is ready.",
            Done::KeyRemoved => "Key removed.",
            Done::SweepDone => "Retention sweep done.",
            Done::ImportQueued => "Import started: its progress shows below.",
        }
    }

    /// The `done=` code of a query string, if it names one.
    pub fn from_query(query: &str) -> Option<Done> {
        let code = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("done="))?;
        Done::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// A 303 to `location` that makes the page there say `done`.
pub fn see_other_done(location: &str, done: Done) -> HttpResponse {
    let sep = if location.contains('?') { '&' } else { '?' };
    super::see_other(&format!("{location}{sep}done={}", done.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_show_nothing() {
        for d in Done::ALL {
            assert_eq!(Done::from_query(&format!("x=1&done={}", d.code())), Some(d));
        }
        assert_eq!(Done::from_query("done=<script>"), None);
        assert_eq!(Done::from_query("q=done=saved"), None);
        assert_eq!(Done::from_query(""), None);
        let r = see_other_done("/kb/1", Done::Uploaded);
        assert_eq!(
            r.headers().get("location").expect("location"),
            "/kb/1?done=uploaded"
        );
        let r = see_other_done("/kb?q=x", Done::Deleted);
        assert_eq!(
            r.headers().get("location").expect("location"),
            "/kb?q=x&done=deleted"
        );
    }
}
