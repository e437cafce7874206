//! What the gateway says to callers: short recordings made by `media/prompts/generate.sh` (espeak-ng, 8 kHz
//! µ-law), embedded so the binary needs no files and builds need neither tool, and a player that cuts them
//! into 20 ms frames of linear samples at 8 kHz (the call puts them in its own codec and rate).

use std::collections::VecDeque;

use super::{g711, voice::NARROW_FRAME as FRAME};

/// One thing the gateway says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// The greeting, asking for the PIN.
    Welcome,
    /// The PIN opened no meeting.
    WrongPin,
    /// The meeting asks for its password.
    Password,
    /// The password was wrong.
    WrongPassword,
    /// Before hanging up.
    Goodbye,
    /// The PIN was right.
    Joining,
    /// Nobody else is in the meeting yet.
    Alone,
    /// Waiting in the lobby.
    Lobby,
    /// A moderator turned the caller away at the lobby.
    Rejected,
    /// The meeting is over (or cancelled).
    MeetingOver,
    /// The meeting has as many people as it may.
    MeetingFull,
    /// A moderator locked the meeting.
    Locked,
    /// The organisation's plan has no dial-in, or the meeting cannot take callers (end-to-end encrypted).
    NotAvailable,
    /// Something failed on our side.
    Unavailable,
    /// A moderator muted the caller (or they muted themselves).
    Muted,
    /// The caller unmuted.
    Unmuted,
    /// The meeting is being recorded.
    Recording,
    /// A moderator removed the caller.
    Removed,
    /// The meeting was ended for everyone.
    Ended,
}

impl Prompt {
    /// The recording, µ-law at 8 kHz.
    fn ulaw(self) -> &'static [u8] {
        match self {
            Self::Welcome => include_bytes!("../../prompts/welcome.ulaw"),
            Self::WrongPin => include_bytes!("../../prompts/wrong-pin.ulaw"),
            Self::Password => include_bytes!("../../prompts/password.ulaw"),
            Self::WrongPassword => include_bytes!("../../prompts/wrong-password.ulaw"),
            Self::Goodbye => include_bytes!("../../prompts/goodbye.ulaw"),
            Self::Joining => include_bytes!("../../prompts/joining.ulaw"),
            Self::Alone => include_bytes!("../../prompts/alone.ulaw"),
            Self::Lobby => include_bytes!("../../prompts/lobby.ulaw"),
            Self::Rejected => include_bytes!("../../prompts/rejected.ulaw"),
            Self::MeetingOver => include_bytes!("../../prompts/meeting-over.ulaw"),
            Self::MeetingFull => include_bytes!("../../prompts/meeting-full.ulaw"),
            Self::Locked => include_bytes!("../../prompts/locked.ulaw"),
            Self::NotAvailable => include_bytes!("../../prompts/not-available.ulaw"),
            Self::Unavailable => include_bytes!("../../prompts/unavailable.ulaw"),
            Self::Muted => include_bytes!("../../prompts/muted.ulaw"),
            Self::Unmuted => include_bytes!("../../prompts/unmuted.ulaw"),
            Self::Recording => include_bytes!("../../prompts/recording.ulaw"),
            Self::Removed => include_bytes!("../../prompts/removed.ulaw"),
            Self::Ended => include_bytes!("../../prompts/ended.ulaw"),
        }
    }

    /// How long it lasts.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.ulaw().len() as u64 / 8)
    }
}

/// Plays prompts one after another, a frame at a time.
#[derive(Debug, Default)]
pub struct Player {
    queue: VecDeque<Prompt>,
    /// Bytes of the first prompt already played.
    played: usize,
}

impl Player {
    /// Plays `prompt` after those queued.
    pub fn play(&mut self, prompt: Prompt) {
        self.queue.push_back(prompt);
    }

    /// Stops at once (the caller pressed a key over the prompt), forgetting what was queued.
    pub fn stop(&mut self) {
        self.queue.clear();
        self.played = 0;
    }

    /// Whether something is still to be said.
    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The next 20 ms (a short last frame padded with silence), or `None` once all is said.
    pub fn next_frame(&mut self) -> Option<[i16; FRAME]> {
        let prompt = *self.queue.front()?;
        let ulaw = prompt.ulaw();
        let start = self.played.min(ulaw.len());
        let end = (start + FRAME).min(ulaw.len());
        let mut frame = [0; FRAME];
        for (sample, &byte) in frame.iter_mut().zip(&ulaw[start..end]) {
            *sample = g711::ulaw_decode(byte);
        }
        if end == ulaw.len() {
            self.queue.pop_front();
            self.played = 0;
        } else {
            self.played = end;
        }
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_play_in_order_in_whole_frames_and_then_the_player_is_quiet() {
        let mut player = Player::default();
        player.play(Prompt::Goodbye);
        player.play(Prompt::Joining);
        let frames = |prompt: Prompt| prompt.ulaw().len().div_ceil(FRAME);
        let mut count = 0;
        while let Some(frame) = player.next_frame() {
            if count == 0 {
                let said: Vec<i16> =
                    Prompt::Goodbye.ulaw()[..FRAME].iter().map(|&byte| g711::ulaw_decode(byte)).collect();
                assert_eq!(frame[..], said[..]);
            }
            count += 1;
        }
        assert_eq!(count, frames(Prompt::Goodbye) + frames(Prompt::Joining));
        assert!(!player.is_playing());
        assert!(Prompt::Welcome.duration() > std::time::Duration::from_secs(3), "the greeting is a sentence");
    }

    #[test]
    fn the_last_frame_is_padded_with_silence_and_stop_forgets_the_queue() {
        let mut player = Player::default();
        player.play(Prompt::Muted);
        let ulaw = Prompt::Muted.ulaw();
        let mut last = None;
        while let Some(frame) = player.next_frame() {
            last = Some(frame);
        }
        let tail = ulaw.len() % FRAME;
        if tail > 0 {
            assert!(last.unwrap()[tail..].iter().all(|&sample| sample == 0));
        }
        player.play(Prompt::Welcome);
        player.next_frame();
        player.stop();
        assert_eq!(player.next_frame(), None);
    }
}
