//! Reads `events.ndjson` incrementally from a byte offset: complete lines only, bad lines
//! skipped and reported, never stuck on a line longer than the read cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use super::files::{io_error, open_checked};
use super::model::{EventBatch, PartyEvent};
use super::read::{is_valid_session_id, session_dir, text, timestamp};
use super::{Limits, PartyError};

/// Reads complete lines of `sessions/<id>/events.ndjson` from byte `from_offset`, at most
/// `limits.max_events_read_bytes` per call. A last line without '\n' is not consumed (it is
/// being written); lines that are not JSON objects are skipped and reported; a line longer
/// than the cap is skipped once its end is written, so the reader never gets stuck. A file
/// shorter than `from_offset` (truncated or replaced) gives an empty batch that says so.
pub fn read_events(
    worktree: &Path,
    session_id: &str,
    from_offset: u64,
    limits: &Limits,
) -> Result<EventBatch, PartyError> {
    read_events_after(worktree, session_id, from_offset, false, limits)
}

/// `read_events`, from an offset that may be inside an over-long line (`inside_long_line`,
/// as the previous batch said): then the rest of that line is skipped first. An over-long
/// line is scanned once for its end, never from its start again.
pub fn read_events_after(
    worktree: &Path,
    session_id: &str,
    from_offset: u64,
    inside_long_line: bool,
    limits: &Limits,
) -> Result<EventBatch, PartyError> {
    let cursor = EventCursor {
        offset: from_offset,
        inside_long_line,
        scanned_to: from_offset,
    };
    read_events_at(worktree, session_id, cursor, limits)
}

/// Where a reader of `events.ndjson` stands: the next line's offset, whether that is inside
/// an over-long line, and how far past it the file is known to hold no '\n' (a line still
/// being written, which is not read again until its end is written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCursor {
    pub offset: u64,
    pub inside_long_line: bool,
    pub scanned_to: u64,
}

impl EventBatch {
    /// Where the next read starts.
    pub fn cursor(&self) -> EventCursor {
        EventCursor {
            offset: self.next_offset,
            inside_long_line: self.inside_long_line,
            scanned_to: self.scanned_to.max(self.next_offset),
        }
    }
}

/// `read_events_after` from a cursor: the bytes of an unfinished last line are looked at
/// once each (for its '\n'), and the line is read whole only once it is complete.
pub fn read_events_at(
    worktree: &Path,
    session_id: &str,
    cursor: EventCursor,
    limits: &Limits,
) -> Result<EventBatch, PartyError> {
    if !is_valid_session_id(session_id) {
        return Err(PartyError::InvalidSessionId {
            id: session_id.to_owned(),
        });
    }
    let relative = session_dir(session_id).join("events.ndjson");
    let from_offset = cursor.offset;
    let mut batch = EventBatch {
        events: Vec::new(),
        next_offset: from_offset,
        skipped: Vec::new(),
        inside_long_line: false,
        scanned_to: cursor.scanned_to.max(from_offset),
    };
    let (mut file, length) = match open_checked(worktree, &relative, OpenOptions::new().read(true))
    {
        Ok((file, metadata)) => (Some(file), metadata.len()),
        Err(error) if error.is_not_found() => (None, 0),
        Err(error) => return Err(error),
    };
    if length < from_offset {
        batch.skipped.push((
            from_offset,
            format!(
                "events.ndjson has {length} bytes, fewer than offset {from_offset}: \
                 it was truncated or replaced"
            ),
        ));
        return Ok(batch);
    }
    let Some(file) = file.as_mut() else {
        return Ok(batch);
    };
    let window = limits.max_events_read_bytes.max(1);
    let io_failure = |source| io_error(&relative, source);
    if cursor.inside_long_line {
        file.seek(SeekFrom::Start(from_offset))
            .map_err(io_failure)?;
        match find_newline(file, u64::MAX).map_err(io_failure)? {
            Ok(end) => batch.next_offset = end + 1,
            Err(scanned_to) => {
                batch.next_offset = scanned_to;
                batch.scanned_to = scanned_to;
                batch.inside_long_line = true;
                return Ok(batch);
            }
        }
    } else if batch.scanned_to > from_offset {
        // An unfinished line: look at its new bytes only, up to the read cap.
        if !finished_line(file, from_offset, window, &mut batch).map_err(io_failure)? {
            return Ok(batch);
        }
    }
    read_lines(file, window, &mut batch).map_err(io_failure)?;
    Ok(batch)
}

/// Whether the unfinished line at `from_offset` has its '\n' now. Without one it is left
/// for later (`scanned_to` moves on), or skipped once it is longer than the read cap.
fn finished_line(
    file: &mut File,
    from_offset: u64,
    window: u64,
    batch: &mut EventBatch,
) -> io::Result<bool> {
    file.seek(SeekFrom::Start(batch.scanned_to))?;
    let limit = (from_offset + window).saturating_sub(batch.scanned_to);
    match find_newline(file, limit)? {
        Ok(_) => Ok(true),
        Err(scanned_to) if scanned_to >= from_offset + window => {
            batch.scanned_to = scanned_to;
            skip_long_line(file, from_offset, window, batch)?;
            Ok(false)
        }
        Err(scanned_to) => {
            batch.scanned_to = scanned_to;
            Ok(false)
        }
    }
}

/// Reads the complete lines from `batch.next_offset`, at most `window` bytes.
fn read_lines(file: &mut File, window: u64, batch: &mut EventBatch) -> io::Result<()> {
    let from_offset = batch.next_offset;
    file.seek(SeekFrom::Start(from_offset))?;
    let mut bytes = Vec::new();
    Read::take(&mut *file, window).read_to_end(&mut bytes)?;
    let mut consumed = 0;
    while let Some(newline) = bytes[consumed..].iter().position(|&b| b == b'\n') {
        let offset = from_offset + consumed as u64;
        match parse_event(offset, &bytes[consumed..consumed + newline]) {
            Ok(Some(event)) => batch.events.push(event),
            Ok(None) => {}
            Err(reason) => batch.skipped.push((offset, reason)),
        }
        consumed += newline + 1;
    }
    batch.next_offset = from_offset + consumed as u64;
    // What is left has no '\n': an unfinished line, not looked at again until it grows.
    batch.scanned_to = from_offset + bytes.len() as u64;
    if consumed == 0 && bytes.len() as u64 == window {
        skip_long_line(file, from_offset, window, batch)?;
    }
    Ok(())
}

/// The first line from `from_offset` does not fit in one read: it is skipped, reported once,
/// and its end is looked for from where the reader is (later calls go on from there).
fn skip_long_line(
    file: &mut File,
    from_offset: u64,
    window: u64,
    batch: &mut EventBatch,
) -> io::Result<()> {
    batch.skipped.push((
        from_offset,
        format!("line longer than the {window}-byte read limit"),
    ));
    match find_newline(file, u64::MAX)? {
        Ok(end) => {
            batch.next_offset = end + 1;
            batch.scanned_to = end + 1;
        }
        Err(scanned_to) => {
            batch.next_offset = scanned_to;
            batch.scanned_to = scanned_to;
            batch.inside_long_line = true;
        }
    }
    Ok(())
}

/// One line without its '\n': an event, nothing (a blank line), or why it is not an event.
fn parse_event(offset: u64, line: &[u8]) -> Result<Option<PartyEvent>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_slice(line).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(object) = &value else {
        return Err("not a JSON object".to_owned());
    };
    Ok(Some(PartyEvent {
        offset,
        ts: timestamp(object, "ts"),
        kind: text(object, "type").unwrap_or_else(|| "unknown".to_owned()),
        raw: value,
    }))
}

/// The offset of the next '\n' from the reader's position on, looking at most `limit`
/// bytes, in small chunks; without one, Err(where the look stopped: a later one goes on).
fn find_newline(file: &mut File, limit: u64) -> io::Result<Result<u64, u64>> {
    let mut position = file.stream_position()?;
    let end = position.saturating_add(limit);
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let want = (end - position).min(chunk.len() as u64) as usize;
        if want == 0 {
            return Ok(Err(position));
        }
        let read = file.read(&mut chunk[..want])?;
        if read == 0 {
            return Ok(Err(position));
        }
        if let Some(index) = chunk[..read].iter().position(|&b| b == b'\n') {
            return Ok(Ok(position + index as u64));
        }
        position += read as u64;
    }
}
