// Seed 003's "Complete Room Subscription Flow", copied unmodified (seed_flow.mjs runs it).
import { io } from 'socket.io-client';

// Connect
const socket = io('wss://api.platform.example.com', {
  auth: { token: userToken }
});

// Wait for connection
socket.on('connect', () => {
  // Subscribe to room
  socket.emit('room:subscribe', { roomId: 'room_xyz789' }, (response) => {
    if (response.success) {
      console.log('Subscribed to room');

      // Listen for events
      socket.on('participant:joined', handleParticipantJoined);
      socket.on('winner:selected', handleWinnerSelected);
      socket.on('lottery:draw_started', handleDrawStarted);
    }
  });
});

// Handle events
function handleParticipantJoined(data) {
  console.log(`${data.participant.user.name} joined`);
  updateParticipantList(data.participant);
}

function handleWinnerSelected(data) {
  console.log(`${data.winner.participant.user.name} won ${data.winner.prize.name}`);
  showWinnerAnimation(data.winner);
}

function handleDrawStarted(data) {
  console.log(`Draw started: ${data.totalPrizes} prizes`);
  startDrawCountdown(data.estimatedDuration);
}

// Cleanup on unmount
function cleanup() {
  socket.emit('room:unsubscribe', { roomId: 'room_xyz789' });
  socket.off('participant:joined', handleParticipantJoined);
  socket.off('winner:selected', handleWinnerSelected);
  socket.off('lottery:draw_started', handleDrawStarted);
  socket.disconnect();
}
