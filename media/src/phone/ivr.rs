//! The conversation before a caller is in a meeting, sans-IO: greet, collect the PIN (and the meeting's
//! password, if it has one) from the keys pressed, and say what went wrong, with a limit on tries and on
//! silence. Keys and time go in; prompts to play, lookups to make and the hang-up come out.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use super::prompts::Prompt;

/// Wrong PINs (or passwords) before the gateway says goodbye.
const TRIES: u8 = 3;
/// An entry without `#` counts as finished this long after its last key.
const BETWEEN_KEYS: Duration = Duration::from_secs(5);
/// A question met with silence this long after it was asked is asked again.
const SILENCE: Duration = Duration::from_secs(10);
/// Times a question is asked before the gateway gives up on a silent caller.
const ASKS: u8 = 3;
/// Longer entries are cut here (a PIN is 9 digits; a password typed on keys is short).
const MAX_DIGITS: usize = 32;

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Say this after what is being said.
    Play(Prompt),
    /// The caller is typing over the prompts: stop them.
    Silence,
    /// Find the meeting this PIN opens, then answer with [`Ivr::answer`].
    LookUp(String),
    /// Join the meeting found, with this password (if one was given), then answer with [`Ivr::answer`].
    Join(Option<String>),
    /// Hang up once everything queued has been said.
    HangUp,
}

/// What came of a lookup or a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The PIN opens no meeting on the number dialled.
    UnknownPin,
    /// The meeting asks for its password.
    PasswordNeeded,
    /// The password given was wrong.
    WrongPassword,
    /// The caller cannot come in; this says why, then the gateway hangs up.
    Refused(Prompt),
    /// The caller is in (or in the lobby): the conversation is over.
    Joined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Collecting the PIN.
    Pin,
    /// Collecting the password.
    Password,
    /// Waiting for a lookup or a join.
    Waiting,
    /// Joined, or hanging up.
    Done,
}

/// One caller's conversation.
#[derive(Debug)]
pub struct Ivr {
    stage: Stage,
    digits: String,
    /// Wrong entries at this stage.
    tries: u8,
    /// Times the current question was asked.
    asks: u8,
    /// When the current question will have been said, from which silence counts.
    asked_until: Instant,
    last_key: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Ivr {
    /// Greets the caller and asks for the PIN.
    pub fn new(now: Instant) -> Self {
        let mut ivr = Self::at(Stage::Pin, now);
        ivr.ask(Prompt::Welcome, now);
        ivr
    }

    /// A caller whose meeting is known already (a trusted SBC named it): straight to joining it with
    /// `password`, asking for one only if the meeting wants it.
    pub fn routed(password: Option<String>, now: Instant) -> Self {
        let mut ivr = Self::at(Stage::Waiting, now);
        ivr.actions.push_back(Action::Join(password));
        ivr
    }

    fn at(stage: Stage, now: Instant) -> Self {
        Self {
            stage,
            digits: String::new(),
            tries: 0,
            asks: 0,
            asked_until: now,
            last_key: None,
            actions: VecDeque::new(),
        }
    }

    fn ask(&mut self, prompt: Prompt, now: Instant) {
        self.digits.clear();
        self.last_key = None;
        self.asks += 1;
        self.asked_until = now + prompt.duration();
        self.actions.push_back(Action::Play(prompt));
    }

    fn hang_up(&mut self, prompt: Prompt) {
        self.stage = Stage::Done;
        self.actions.push_back(Action::Play(prompt));
        self.actions.push_back(Action::HangUp);
    }

    /// A key the caller pressed.
    pub fn key(&mut self, key: char, now: Instant) {
        if !matches!(self.stage, Stage::Pin | Stage::Password) {
            return;
        }
        if self.digits.is_empty() && self.last_key.is_none() {
            self.actions.push_back(Action::Silence);
        }
        self.last_key = Some(now);
        match key {
            '#' => self.submit(now),
            // A fresh start, as IVRs commonly offer.
            '*' => self.digits.clear(),
            '0'..='9' if self.digits.len() < MAX_DIGITS => self.digits.push(key),
            _ => {}
        }
    }

    fn submit(&mut self, now: Instant) {
        if self.digits.is_empty() {
            let prompt = if self.stage == Stage::Pin { Prompt::Welcome } else { Prompt::Password };
            self.ask(prompt, now);
            return;
        }
        let entry = std::mem::take(&mut self.digits);
        self.actions.push_back(if self.stage == Stage::Pin {
            Action::LookUp(entry)
        } else {
            Action::Join(Some(entry))
        });
        self.stage = Stage::Waiting;
        self.last_key = None;
    }

    /// What came of the last lookup or join.
    pub fn answer(&mut self, answer: Answer, now: Instant) {
        if self.stage != Stage::Waiting {
            return;
        }
        let (stage, again) = match answer {
            Answer::Joined => {
                self.stage = Stage::Done;
                return;
            }
            Answer::Refused(prompt) => return self.hang_up(prompt),
            Answer::PasswordNeeded => {
                self.tries = 0;
                self.asks = 0;
                self.stage = Stage::Password;
                return self.ask(Prompt::Password, now);
            }
            Answer::UnknownPin => (Stage::Pin, Prompt::WrongPin),
            Answer::WrongPassword => (Stage::Password, Prompt::WrongPassword),
        };
        self.tries += 1;
        if self.tries >= TRIES {
            return self.hang_up(Prompt::Goodbye);
        }
        self.stage = stage;
        self.asks = 0;
        self.ask(again, now);
    }

    /// When [`Ivr::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !matches!(self.stage, Stage::Pin | Stage::Password) {
            return None;
        }
        Some(match self.last_key {
            Some(key) => key + BETWEEN_KEYS,
            None => self.asked_until + SILENCE,
        })
    }

    /// Time passes: an entry left unfinished is submitted; a question met with silence is asked again.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|due| now < due) {
            return;
        }
        if self.last_key.is_some() {
            return self.submit(now);
        }
        if self.asks >= ASKS {
            return self.hang_up(Prompt::Goodbye);
        }
        let prompt = if self.stage == Stage::Pin { Prompt::Welcome } else { Prompt::Password };
        self.ask(prompt, now);
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(ivr: &mut Ivr) -> Vec<Action> {
        std::iter::from_fn(|| ivr.poll_action()).collect()
    }

    fn press(ivr: &mut Ivr, keys: &str, now: Instant) {
        for key in keys.chars() {
            ivr.key(key, now);
        }
    }

    #[test]
    fn the_pin_then_the_password_are_collected_and_typing_over_the_greeting_stops_it() {
        let start = Instant::now();
        let mut ivr = Ivr::new(start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::Welcome)]);
        press(&mut ivr, "12*123456789#", start);
        assert_eq!(actions(&mut ivr), [Action::Silence, Action::LookUp("123456789".into())]);
        press(&mut ivr, "5", start);
        assert_eq!(ivr.poll_timeout(), None, "keys are ignored while the PIN is looked up");
        ivr.answer(Answer::PasswordNeeded, start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::Password)]);
        press(&mut ivr, "42#", start);
        assert_eq!(actions(&mut ivr), [Action::Silence, Action::Join(Some("42".into()))]);
        ivr.answer(Answer::WrongPassword, start);
        press(&mut ivr, "4242#", start);
        assert_eq!(
            actions(&mut ivr),
            [Action::Play(Prompt::WrongPassword), Action::Silence, Action::Join(Some("4242".into()))]
        );
        ivr.answer(Answer::Joined, start);
        press(&mut ivr, "1#", start);
        assert_eq!((actions(&mut ivr), ivr.poll_timeout()), (vec![], None));
    }

    #[test]
    fn a_routed_caller_joins_at_once_and_is_asked_for_the_password_only_when_the_one_given_fails() {
        let start = Instant::now();
        let mut ivr = Ivr::routed(Some("99".into()), start);
        assert_eq!(actions(&mut ivr), [Action::Join(Some("99".into()))], "no greeting, no PIN");
        ivr.answer(Answer::WrongPassword, start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::WrongPassword)]);
        press(&mut ivr, "42#", start);
        assert_eq!(actions(&mut ivr), [Action::Silence, Action::Join(Some("42".into()))]);
        let mut ivr = Ivr::routed(None, start);
        actions(&mut ivr);
        ivr.answer(Answer::PasswordNeeded, start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::Password)]);
    }

    #[test]
    fn three_wrong_pins_end_the_call_with_a_goodbye() {
        let start = Instant::now();
        let mut ivr = Ivr::new(start);
        actions(&mut ivr);
        for _ in 0..2 {
            press(&mut ivr, "111#", start);
            ivr.answer(Answer::UnknownPin, start);
        }
        press(&mut ivr, "111#", start);
        ivr.answer(Answer::UnknownPin, start);
        let said = actions(&mut ivr);
        let wrong = said.iter().filter(|action| **action == Action::Play(Prompt::WrongPin)).count();
        assert_eq!(wrong, 2, "{said:?}");
        assert_eq!(said[said.len() - 2..], [Action::Play(Prompt::Goodbye), Action::HangUp]);
    }

    #[test]
    fn an_entry_without_pound_counts_after_a_pause_and_silence_is_asked_again_then_ended() {
        let start = Instant::now();
        let mut ivr = Ivr::new(start);
        actions(&mut ivr);
        press(&mut ivr, "987", start);
        ivr.handle_timeout(start + BETWEEN_KEYS - Duration::from_millis(1));
        assert_eq!(actions(&mut ivr), [Action::Silence]);
        ivr.handle_timeout(start + BETWEEN_KEYS);
        assert_eq!(actions(&mut ivr), [Action::LookUp("987".into())]);
        ivr.answer(Answer::UnknownPin, start);
        actions(&mut ivr);
        let mut now = start;
        for _ in 0..ASKS {
            now = ivr.poll_timeout().unwrap();
            ivr.handle_timeout(now);
        }
        let said = actions(&mut ivr);
        assert_eq!(
            said,
            [
                Action::Play(Prompt::Welcome),
                Action::Play(Prompt::Welcome),
                Action::Play(Prompt::Goodbye),
                Action::HangUp
            ]
        );
        assert!(now >= start + 3 * SILENCE);
    }

    #[test]
    fn a_refusal_is_said_before_hanging_up_and_an_empty_entry_repeats_the_question() {
        let start = Instant::now();
        let mut ivr = Ivr::new(start);
        press(&mut ivr, "#", start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::Welcome), Action::Silence, Action::Play(Prompt::Welcome)]);
        press(&mut ivr, "123#", start);
        actions(&mut ivr);
        ivr.answer(Answer::Refused(Prompt::MeetingOver), start);
        assert_eq!(actions(&mut ivr), [Action::Play(Prompt::MeetingOver), Action::HangUp]);
    }
}
