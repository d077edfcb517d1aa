//! Hash indexes over the state's users and phones, so lookups stay flat as the state grows.
//!
//! The users and phones stay in `Vec`s in creation order (the order lists page through); the
//! index maps each key to a position. It is derived data: never serialised, rebuilt on load and
//! seed, and kept right by the `State` methods that change users and phones. Removing a user or
//! a phone shifts positions, so it rebuilds the index (O(n)); every other change is O(1).

use std::collections::HashMap;

use crate::model::{Phone, User};

/// Positions of users and phones by the keys Duo looks them up by.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    user_by_id: HashMap<String, usize>,
    user_by_name: HashMap<String, usize>,
    /// Lower-cased email → positions, ascending (several users may share an address).
    users_by_email: HashMap<String, Vec<usize>>,
    phone_by_id: HashMap<String, usize>,
    /// Digits of the number → position.
    phone_by_digits: HashMap<String, usize>,
    /// Phone id → positions of the users it is associated with, ascending (creation order).
    users_of_phone: HashMap<String, Vec<usize>>,
}

/// The index is derived from the data it indexes, so two states with equal data are equal
/// whatever their indexes hold.
impl PartialEq for Index {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Keeps the digits of a number, which is how two spellings of one number are compared.
pub fn normalise_number(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

fn insert_sorted(list: &mut Vec<usize>, pos: usize) {
    if let Err(at) = list.binary_search(&pos) {
        list.insert(at, pos);
    }
}

fn remove_sorted(list: &mut Vec<usize>, pos: usize) {
    if let Ok(at) = list.binary_search(&pos) {
        list.remove(at);
    }
}

impl Index {
    /// Builds the index of `users` and `phones` from scratch.
    pub fn build(users: &[User], phones: &[Phone]) -> Self {
        let mut index = Index::default();
        for (pos, phone) in phones.iter().enumerate() {
            index.add_phone(pos, phone);
        }
        for (pos, user) in users.iter().enumerate() {
            index.add_user(pos, user);
        }
        index
    }

    pub fn add_user(&mut self, pos: usize, user: &User) {
        self.user_by_id.insert(user.user_id.clone(), pos);
        self.user_by_name.insert(user.username.clone(), pos);
        if !user.email.is_empty() {
            insert_sorted(self.users_by_email.entry(user.email.to_lowercase()).or_default(), pos);
        }
        for phone_id in &user.phones {
            self.associate(pos, phone_id);
        }
    }

    /// Re-keys a user whose username or email changed (its phones are changed one by one).
    pub fn rename_user(&mut self, pos: usize, before: &User, after: &User) {
        if before.username != after.username {
            self.user_by_name.remove(&before.username);
            self.user_by_name.insert(after.username.clone(), pos);
        }
        let (old, new) = (before.email.to_lowercase(), after.email.to_lowercase());
        if old != new {
            if let Some(list) = self.users_by_email.get_mut(&old) {
                remove_sorted(list, pos);
                if list.is_empty() {
                    self.users_by_email.remove(&old);
                }
            }
            if !new.is_empty() {
                insert_sorted(self.users_by_email.entry(new).or_default(), pos);
            }
        }
    }

    pub fn add_phone(&mut self, pos: usize, phone: &Phone) {
        self.phone_by_id.insert(phone.phone_id.clone(), pos);
        let digits = normalise_number(&phone.number);
        if !digits.is_empty() {
            self.phone_by_digits.insert(digits, pos);
        }
    }

    pub fn associate(&mut self, user_pos: usize, phone_id: &str) {
        insert_sorted(self.users_of_phone.entry(phone_id.to_string()).or_default(), user_pos);
    }

    pub fn disassociate(&mut self, user_pos: usize, phone_id: &str) {
        if let Some(list) = self.users_of_phone.get_mut(phone_id) {
            remove_sorted(list, user_pos);
        }
    }

    pub fn user(&self, user_id: &str) -> Option<usize> {
        self.user_by_id.get(user_id).copied()
    }

    pub fn user_by_name(&self, username: &str) -> Option<usize> {
        self.user_by_name.get(username).copied()
    }

    /// Positions of the users with this email, compared case-insensitively; none for "".
    pub fn users_by_email(&self, email: &str) -> &[usize] {
        self.users_by_email.get(&email.to_lowercase()).map_or(&[], Vec::as_slice)
    }

    pub fn phone(&self, phone_id: &str) -> Option<usize> {
        self.phone_by_id.get(phone_id).copied()
    }

    pub fn phone_by_number(&self, number: &str) -> Option<usize> {
        self.phone_by_digits.get(&normalise_number(number)).copied()
    }

    /// Positions of the users a phone is associated with, in creation order.
    pub fn users_of(&self, phone_id: &str) -> &[usize] {
        self.users_of_phone.get(phone_id).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_lists_stay_sorted_and_unique() {
        let mut list = Vec::new();
        for pos in [5, 1, 3, 1] {
            insert_sorted(&mut list, pos);
        }
        assert_eq!(list, [1, 3, 5]);
        remove_sorted(&mut list, 3);
        remove_sorted(&mut list, 9);
        assert_eq!(list, [1, 5]);
    }

    #[test]
    fn numbers_compare_by_digits() {
        assert_eq!(normalise_number("+1 (555) 555-0100"), "15555550100");
        assert_eq!(normalise_number("ext."), "");
    }
}
