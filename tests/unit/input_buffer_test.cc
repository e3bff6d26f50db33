// The NBD connection's input buffer (fs/nbd/input_buffer.h): room() may move what it holds,
// room_in_place() never does. The daemon relies on the second while a batch's writes point
// into the buffer (it receives the next requests' bytes meanwhile).
#include "fs/nbd/input_buffer.h"

#include <gtest/gtest.h>

#include <cstring>

namespace nyads::nbd {
namespace {

void put(InputBuffer& in, std::span<std::uint8_t> room, std::uint8_t value, std::size_t n) {
  ASSERT_LE(n, room.size());
  std::memset(room.data(), value, n);
  in.commit(n);
}

TEST(InputBuffer, ReceivingInPlaceNeverMovesOrReusesWhatIsHeld) {
  InputBuffer in;
  put(in, in.room(1000), 1, 1000);
  const std::uint8_t* payload = in.unparsed().data();
  // A command took all 1000 bytes (its payload points at them) and was parsed away.
  in.consume(1000);
  EXPECT_EQ(in.size(), 0u);
  auto room = in.room_in_place();
  ASSERT_FALSE(room.empty());
  EXPECT_EQ(room.data(), payload + 1000) << "received bytes would overwrite a parsed payload";
  put(in, room, 2, 100);
  EXPECT_EQ(payload[0], 1);
  EXPECT_EQ(payload[999], 1);
  EXPECT_EQ(in.unparsed().data(), payload + 1000);
  EXPECT_EQ(in.size(), 100u);
  // Full: no room in place, and nothing moved to make some.
  const std::size_t left = in.room_in_place().size();
  put(in, in.room_in_place(), 3, left);
  EXPECT_TRUE(in.room_in_place().empty());
  EXPECT_EQ(in.unparsed().data(), payload + 1000);
}

TEST(InputBuffer, RoomReusesTheBufferOnceAllIsParsed) {
  InputBuffer in;
  put(in, in.room(1000), 1, 1000);
  const std::uint8_t* first = in.unparsed().data();
  in.consume(1000);
  // Nothing points into it any more (room() is only asked then): it starts over at the front.
  auto room = in.room(100);
  EXPECT_EQ(room.data(), first);
  put(in, room, 4, 100);
  ASSERT_EQ(in.size(), 100u);
  EXPECT_EQ(in.unparsed()[0], 4);
}

TEST(InputBuffer, RoomKeepsWhatIsLeftWhenItGrows) {
  InputBuffer in;
  put(in, in.room(100), 5, 100);
  in.consume(40);
  auto room = in.room(1 << 20);
  ASSERT_GE(room.size(), std::size_t{1} << 20);
  ASSERT_EQ(in.size(), 60u);
  for (auto b : in.unparsed()) ASSERT_EQ(b, 5);
}

}  // namespace
}  // namespace nyads::nbd
