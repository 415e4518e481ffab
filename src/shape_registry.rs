//! Numbers the shapes of the sessions read (see [`crate::json_split`]), so that each crosses
//! to Node's thread once, with its number, and later reads name it by number alone.
//!
//! The numbering is bounded: an application whose sessions take ever new shapes (keys made
//! from data, say) would otherwise make Node's side compile without end. Once
//! [`MAX_SHAPES`] are numbered, sessions of any other shape go whole to `JSON.parse`.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most shapes numbered per store.
pub const MAX_SHAPES: usize = 256;

/// The number of a shape, and whether this is its first use (its descriptor must then
/// cross before the values that use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    /// The shape's number, from 0.
    pub number: u32,
    /// Numbered by this call.
    pub is_new: bool,
}

/// The shapes numbered so far, for one consumer.
#[derive(Debug, Default)]
pub struct ShapeRegistry {
    numbers: Mutex<HashMap<String, u32>>,
}

impl ShapeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of `descriptor`, numbering it if it is new and there is room; `None` when
    /// the registry is full.
    pub fn number(&self, descriptor: &str) -> Option<Numbered> {
        let mut numbers = self.numbers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&number) = numbers.get(descriptor) {
            return Some(Numbered { number, is_new: false });
        }
        if numbers.len() >= MAX_SHAPES {
            return None;
        }
        let number = numbers.len() as u32;
        numbers.insert(descriptor.to_owned(), number);
        Some(Numbered { number, is_new: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_keeps_its_number_and_is_new_once() {
        let registry = ShapeRegistry::new();
        assert_eq!(registry.number("a"), Some(Numbered { number: 0, is_new: true }));
        assert_eq!(registry.number("b"), Some(Numbered { number: 1, is_new: true }));
        assert_eq!(registry.number("a"), Some(Numbered { number: 0, is_new: false }));
    }

    #[test]
    fn no_new_number_once_full_but_known_shapes_keep_theirs() {
        let registry = ShapeRegistry::new();
        for n in 0..MAX_SHAPES {
            assert!(registry.number(&n.to_string()).is_some_and(|numbered| numbered.is_new));
        }
        assert_eq!(registry.number("one more"), None);
        assert_eq!(registry.number("7"), Some(Numbered { number: 7, is_new: false }));
    }
}
