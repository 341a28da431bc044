//! Reading the agent's output: both pipes line by line (each line capped) onto one channel,
//! and the capped log that is stored. Knows nothing of what the lines mean.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Stream;

/// Longest line kept; the rest of a longer line is read and dropped.
pub(super) const MAX_LINE_BYTES: usize = 1024 * 1024;
const LINE_CHANNEL_CAPACITY: usize = 256;
const STDERR_PREFIX: &str = "[stderr] ";
pub(super) const TRUNCATION_NOTE: &str =
    "\n[aiops] log truncated: further output was read but not kept\n";

/// Starts one reader per pipe of `child`; the lines of both arrive on the returned channel in
/// the order they were read. Dropping the returned set stops the readers.
pub(super) fn spawn_readers(child: &mut Child) -> (mpsc::Receiver<(Stream, String)>, JoinSet<()>) {
    let (line_tx, line_rx) = mpsc::channel(LINE_CHANNEL_CAPACITY);
    let mut readers = JoinSet::new();
    readers.spawn(forward_lines(
        child.stdout.take().expect("stdout is piped"),
        Stream::Stdout,
        line_tx.clone(),
    ));
    readers.spawn(forward_lines(
        child.stderr.take().expect("stderr is piped"),
        Stream::Stderr,
        line_tx,
    ));
    (line_rx, readers)
}

/// Reads lines (cut at [`MAX_LINE_BYTES`]) and sends them on until end of stream, a read
/// error, or the receiver is gone.
async fn forward_lines(
    pipe: impl AsyncRead + Unpin,
    stream: Stream,
    lines: mpsc::Sender<(Stream, String)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        match read_capped_line(&mut reader, &mut line).await {
            Ok(true) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\r').unwrap_or(&text).to_owned();
                if lines.send((stream, text)).await.is_err() {
                    return;
                }
            }
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(?stream, error = %e, "cannot read the agent's output");
                return;
            }
        }
    }
}

/// Reads one line without its '\n' into `line`, keeping at most [`MAX_LINE_BYTES`] of it and
/// consuming the rest. False at end of stream.
async fn read_capped_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(&content[..content.len().min(room)]);
        let consumed = newline.map_or(available.len(), |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(true);
        }
    }
}

/// The stored log: whole lines while they fit, then the start of the first line that does
/// not, then a note.
pub(super) struct CappedLog {
    pub(super) text: String,
    cap: usize,
    pub(super) truncated: bool,
}

impl CappedLog {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            text: String::new(),
            cap,
            truncated: false,
        }
    }

    pub(super) fn push_line(&mut self, stream: Stream, line: &str) {
        if self.truncated {
            return;
        }
        let prefix = match stream {
            Stream::Stdout => "",
            Stream::Stderr => STDERR_PREFIX,
        };
        let entry = format!("{prefix}{line}\n");
        let room = self.cap - self.text.len();
        if entry.len() <= room {
            self.text.push_str(&entry);
        } else {
            self.text
                .push_str(&entry[..entry.floor_char_boundary(room)]);
            self.text.push_str(TRUNCATION_NOTE);
            self.truncated = true;
        }
    }
}
