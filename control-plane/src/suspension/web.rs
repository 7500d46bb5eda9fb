//! Suspension has no pages of its own: the operator console and billing start and lift
//! causes, with a `Context` the app state gives (`AppState::suspension`).

#[cfg(test)]
mod tests {
    #[test]
    fn the_owners_are_told() {
        assert_eq!(
            super::super::model::NOTIFIED_ROLES,
            [crate::workspaces::ROLE_OWNER]
        );
    }
}
