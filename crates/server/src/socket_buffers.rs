//! The socket side every connection task shares (AMQP and MQTT): pending output coalesced
//! into one buffer for batched writes, and a read buffer that grows while reads fill it
//! and is given back when traffic stops, so idle connections cost little.

use bytes::{Buf, BytesMut};

/// Unwritten output above which a task stops reading and taking new deliveries.
pub const HIGH_WATER: usize = 1 << 20;
/// Read buffer of a busy connection: large, so one read brings many frames.
pub const LARGE_READ: usize = 64 * 1024;

/// A connection task's output in waiting and its read sizing.
pub struct SocketBuffers {
    /// Bytes to write, oldest first.
    pub out: BytesMut,
    /// The quiet size of the read buffer.
    small_read: usize,
    /// How much the next read asks for.
    read_size: usize,
}

impl SocketBuffers {
    /// Buffers whose read size rests at `small_read` bytes between bursts.
    pub fn new(small_read: usize) -> Self {
        SocketBuffers {
            out: BytesMut::new(),
            small_read,
            read_size: small_read,
        }
    }

    /// Moves what the engine wrote into the pending output: its buffer itself when
    /// nothing is pending (no copy), else appended.
    pub fn take_output(&mut self, engine_out: &mut BytesMut) {
        if engine_out.is_empty() {
            return;
        }
        if self.out.is_empty() {
            self.out = engine_out.split();
        } else {
            self.out.extend_from_slice(engine_out);
            engine_out.clear();
        }
    }

    /// Whether the pending output is below [`HIGH_WATER`] (the task may read and take
    /// deliveries).
    pub fn below_high_water(&self) -> bool {
        self.out.len() < HIGH_WATER
    }

    /// `n` bytes were written.
    pub fn wrote(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Makes room in `input` for the next read; returns the room.
    pub fn prepare_read(&self, input: &mut BytesMut) -> usize {
        if input.capacity() - input.len() < self.read_size / 4 {
            input.reserve(self.read_size);
        }
        input.capacity() - input.len()
    }

    /// A read brought `n` bytes into `room`: grow the next read while reads fill the
    /// buffer, fall back to the quiet size when they bring little.
    pub fn after_read(&mut self, n: usize, room: usize) {
        self.read_size = if n == room {
            LARGE_READ
        } else if n < self.small_read / 2 {
            self.small_read
        } else {
            self.read_size
        };
    }

    /// Once the engine has consumed the input: a large buffer left empty by a quiet
    /// connection is given back.
    pub fn release_idle(&self, input: &mut BytesMut) {
        if input.is_empty()
            && self.read_size == self.small_read
            && input.capacity() > self.small_read
        {
            *input = BytesMut::new();
        }
    }
}

/// Sleeps until `deadline` (an engine's next timer), or for ever without one: the timer
/// arm of every connection task's `select!`.
pub async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_taken_without_copy_then_appended() {
        let mut b = SocketBuffers::new(1024);
        let mut engine = BytesMut::from(&b"abc"[..]);
        let ptr = engine.as_ptr();
        b.take_output(&mut engine);
        assert_eq!(b.out.as_ptr(), ptr, "the engine's buffer itself");
        engine.extend_from_slice(b"de");
        b.take_output(&mut engine);
        assert_eq!(&b.out[..], b"abcde");
        assert!(engine.is_empty());
        b.wrote(4);
        assert_eq!(&b.out[..], b"e");
    }

    #[test]
    fn the_read_buffer_grows_under_load_and_is_given_back_when_quiet() {
        let mut b = SocketBuffers::new(1024);
        let mut input = BytesMut::new();
        let room = b.prepare_read(&mut input);
        assert!((1024..LARGE_READ).contains(&room));
        b.after_read(room, room); // filled: read more next time
        input.clear();
        assert!(b.prepare_read(&mut input) >= room);
        input.reserve(LARGE_READ);
        let room = input.capacity();
        b.after_read(10, room); // a trickle: back to quiet
        b.release_idle(&mut input);
        assert_eq!(
            input.capacity(),
            0,
            "a quiet connection keeps no large buffer"
        );
    }
}
