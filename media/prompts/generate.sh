#!/bin/sh
# Speaks the phone gateway's prompts with espeak-ng and writes them as 8 kHz µ-law, the form the gateway
# embeds (`media/src/phone/prompts.rs`). Run from the repository root after changing a text; commit the
# outputs, so builds need neither tool. Needs espeak-ng and ffmpeg (Debian's packages).
set -eu
cd "$(dirname "$0")"
say() {
    espeak-ng -v en-us -s 155 -w "$1.wav" "$2"
    ffmpeg -loglevel error -y -i "$1.wav" -af "volume=-3dB" -ar 8000 -ac 1 -f mulaw "$1.ulaw"
    rm "$1.wav"
}
say welcome "Welcome to Convene. Please enter your meeting PIN, followed by the pound key."
say wrong-pin "That PIN is not right. Please enter it again, followed by the pound key."
say password "This meeting has a password. Please enter it, followed by the pound key."
say wrong-password "That password is not right. Please try again."
say goodbye "Goodbye."
say joining "You are joining the meeting."
say alone "You are the first one here. Others will join you soon."
say lobby "Please wait. A host will let you in shortly."
say rejected "A host did not let you in. Goodbye."
say meeting-over "This meeting is over. Goodbye."
say meeting-full "This meeting is full. Please try again later. Goodbye."
say locked "This meeting is locked. Goodbye."
say not-available "Dial-in is not available for this meeting. Goodbye."
say unavailable "Sorry, the meeting cannot be reached right now. Please try again later. Goodbye."
say muted "You are muted. Press star six to unmute."
say unmuted "You are unmuted."
say recording "This meeting is being recorded."
say removed "You were removed from the meeting. Goodbye."
say ended "The meeting has ended. Goodbye."
