// drainReadable: what a closing handler reads and drops, over a socket pair.
#include "proxy/handlers/linger.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <string>

namespace edgeplane::proxy {
namespace {

class LingerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0);
  }
  void TearDown() override {
    ::close(fds_[0]);
    if (fds_[1] >= 0) {
      ::close(fds_[1]);
    }
  }
  void send(size_t n) {
    const std::string bytes(n, 'x');
    ASSERT_EQ(::write(fds_[1], bytes.data(), bytes.size()), static_cast<ssize_t>(n));
  }
  Drained drain(size_t& total, size_t limit) {
    return drainReadable(fds_[0], scratch_, total, limit);
  }

  int fds_[2] = {-1, -1};
  std::array<uint8_t, 1024> scratch_{};
};

TEST_F(LingerTest, ReadsWhatIsThereThenWaits) {
  size_t total = 0;
  EXPECT_EQ(drain(total, 10000), Drained::WouldBlock);
  EXPECT_EQ(total, 0u);
  send(3000);  // more than one scratch buffer
  EXPECT_EQ(drain(total, 10000), Drained::WouldBlock);
  EXPECT_EQ(total, 3000u);
  send(500);
  EXPECT_EQ(drain(total, 10000), Drained::WouldBlock);
  EXPECT_EQ(total, 3500u);  // counted across calls
}

TEST_F(LingerTest, StopsPastTheLimit) {
  size_t total = 0;
  send(4000);
  EXPECT_EQ(drain(total, 2500), Drained::Limit);
  EXPECT_GT(total, 2500u);
  EXPECT_LT(total, 4000u);  // no more read than the buffer that crossed the limit
}

TEST_F(LingerTest, EndsWhenThePeerCloses) {
  size_t total = 0;
  send(100);
  ::close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(drain(total, 10000), Drained::Ended);
  EXPECT_EQ(total, 100u);
}

}  // namespace
}  // namespace edgeplane::proxy
