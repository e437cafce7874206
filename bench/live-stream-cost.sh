#!/bin/sh
# What one live stream's encoder costs: the stream's ffmpeg command (media/src/streaming/mod.rs `encoder`)
# fed in real time with what the muxer sends (a 640x360 VP8 stage at 30 fps, ten Opus voice tracks),
# pushing RTMP to an ffmpeg listening on loopback. Prints the encoder's CPU seconds and peak memory. The
# encoder's arguments below mirror `encoder`; change both together. Usage: live-stream-cost.sh [seconds]
set -e
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
SECONDS_LONG=${1:-30}
ffmpeg -v error -y -f lavfi -i testsrc=size=640x360:rate=30 -t $SECONDS_LONG -c:v libvpx -b:v 800k -deadline realtime -cpu-used 8 stage.webm
ffmpeg -v error -y -f lavfi -i sine=frequency=440:sample_rate=48000 -t $SECONDS_LONG -c:a libopus -b:a 32k voice.webm
MAPS=""; INPUTS="-i stage.webm"
for i in 1 2 3 4 5 6 7 8 9 10; do INPUTS="$INPUTS -i voice.webm"; MAPS="$MAPS -map $i:a"; done
ffmpeg -v error -y $INPUTS -map 0:v $MAPS -c copy live.mkv
PORT=${PORT:-19350}
ffmpeg -v error -y -listen 1 -f flv -i rtmp://127.0.0.1:$PORT/live/k -c copy received.flv &
LISTENER=$!
sleep 1
GRAPH="[0:v:0]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,fps=30,format=yuv420p[v];[0:a:0][0:a:1][0:a:2][0:a:3][0:a:4][0:a:5][0:a:6][0:a:7][0:a:8][0:a:9]amix=inputs=10:normalize=0:dropout_transition=0[a]"
ffmpeg -v error -re -i live.mkv -c copy -map 0 -f matroska - | /usr/bin/time -f "encoder: %U s user, %S s system, %M KB peak, %e s wall" \
  ffmpeg -hide_banner -nostdin -loglevel error -fflags +genpts -analyzeduration 1000000 -f matroska -i pipe:0 \
  -filter_complex "$GRAPH" -map "[v]" -map "[a]" -c:v libx264 -preset veryfast -tune zerolatency -b:v 3000k \
  -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -sc_threshold 0 -c:a aac -b:a 128k -ar 44100 -f flv rtmp://127.0.0.1:$PORT/live/k
wait $LISTENER
ffprobe -v error -show_entries format=duration,bit_rate -of csv=p=0 received.flv
