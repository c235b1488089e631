//! The object names of the parts of a frame changed in place
//! (docs/FORMAT.md): `\0brain-part\0<frame>\0<id>`, in the frame's
//! namespace. Plain names, so that the layers that show or report objects
//! (errors, listings) read them without the frames module.

/// What every part's name starts with. A name cannot be confused with a
/// user's unless the user's name starts with a NUL byte and these words.
pub const PART_PREFIX: &str = "\0brain-part\0";

/// Whether `name` is a part of a frame (a name listings for people skip).
pub fn is_frame_part(name: &str) -> bool {
    name.starts_with(PART_PREFIX)
}

/// The name of the frame a part belongs to, when `name` is a part's.
pub fn part_owner(name: &str) -> Option<&str> {
    name.strip_prefix(PART_PREFIX)?
        .rsplit_once('\0')
        .map(|(owner, _)| owner)
}

/// The object name of part `id` of frame `name`.
pub fn part_name(name: &str, id: &str) -> String {
    format!("{PART_PREFIX}{name}\0{id}")
}
