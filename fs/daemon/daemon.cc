#include "fs/daemon/daemon.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "fs/daemon/control_commands.h"
#include "fs/daemon/sockets.h"
#include "fs/daemon/ublk_exports.h"
#include "fs/daemon/writeback_thread.h"
#include "fs/nbd/input_buffer.h"
#include "fs/nbd/session.h"

namespace nyads::daemon {

namespace {
std::string n(std::uint64_t v) { return std::to_string(v); }

void log(const std::string& line) { std::fprintf(stderr, "nyadsd: %s\n", line.c_str()); }

bool is_socket(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
}
}  // namespace

InheritedSockets inherited_sockets() {
  InheritedSockets out;
  const char* pid = std::getenv("LISTEN_PID");
  const char* fds = std::getenv("LISTEN_FDS");
  if (pid == nullptr || fds == nullptr || std::strtol(pid, nullptr, 10) != ::getpid()) return out;
  const long count = std::strtol(fds, nullptr, 10);
  std::vector<std::string> names;
  if (const char* nm = std::getenv("LISTEN_FDNAMES")) {
    std::string all(nm);
    for (std::size_t at = 0; at <= all.size();) {
      const auto colon = all.find(':', at);
      names.push_back(all.substr(at, colon == std::string::npos ? std::string::npos : colon - at));
      if (colon == std::string::npos) break;
      at = colon + 1;
    }
  }
  for (long i = 0; i < count && i < 2; ++i) {
    const int fd = 3 + static_cast<int>(i);
    if (!is_socket(fd)) continue;
    // Names other than ours (systemd's default is the unit's name) count as unnamed.
    std::string name = static_cast<std::size_t>(i) < names.size() ? names[static_cast<std::size_t>(i)] : "";
    if (name != "nbd" && name != "control") name.clear();
    if (name == "control" || (name.empty() && i == 1))
      out.control = fd;
    else
      out.nbd = fd;
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return out;
}

struct Daemon::Impl : nbd::ExportCatalog, ControlContext {
  // One client connection: NBD or control.
  struct Connection {
    int fd = -1;
    bool control = false;
    std::string peer;
    nbd::Session session;
    nbd::InputBuffer in;   // received, not yet parsed
    std::size_t need = 0;  // bytes the next message needs, when known
    nbd::OutputQueue out;
    std::vector<nbd::Command> commands;  // taken this turn
    bool close_when_sent = false;
    bool dead = false;
    std::string receive_error;          // a failed recv in receive_in_place, for the next receive
    bool awaiting_answer = false;       // a control request whose answer comes later (ublk)
    std::uint32_t awaiting_commit = 0;  // its FLUSH and FUA requests waiting for a commit
    std::uint64_t serial = 0;           // unique for the daemon's life (fds are reused)
    std::uint32_t events = 0;           // what epoll watches for it now
    explicit Connection(const ExportCatalog& c) : session(c) {}
  };

  std::unique_ptr<Store> store_;
  std::string device_;
  DaemonOptions options_;
  int epoll_ = -1;
  // NBD connections (edge-triggered) and the device's writes-done eventfd: what the loop
  // waits on while a batch's writes are copied out (receive_meanwhile).
  int meanwhile_epoll_ = -1;
  int signal_fd_ = -1;
  std::vector<int> nbd_listeners_;
  int control_listener_ = -1;
  std::vector<std::string> created_paths_;                  // socket files to remove at exit
  std::map<int, std::unique_ptr<Connection>> connections_;  // by fd
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::string nbd_where_, control_where_;
  std::unique_ptr<UblkExports> ublk_;
  std::uint64_t control_serial_ = 0;  // the control connection whose request runs now

  // FLUSH and FUA requests whose I/O has run, waiting for the commit that answers them.
  struct AwaitingCommit {
    int fd = -1;
    std::uint64_t serial = 0;  // the connection's: its fd may be reused meanwhile
    nbd::Command command;
  };
  std::vector<AwaitingCommit> awaiting_commit_;
  // Writes the device's dirty data back before a commit, beside the loop. Declared after
  // store_, so it is destroyed first: its job uses the device.
  WritebackThread writeback_;
  std::uint64_t writebacks_ = 0;              // jobs run, for `nyads status`
  bool idle_written_back_ = false;            // a job ran for the next idle work's commit
  std::uint64_t received_while_writing_ = 0;  // bytes taken in by receive_meanwhile

  ~Impl() {
    for (auto& [fd, c] : connections_) ::close(fd);
    for (int fd : nbd_listeners_) ::close(fd);
    if (control_listener_ >= 0) ::close(control_listener_);
    if (signal_fd_ >= 0) ::close(signal_fd_);
    if (epoll_ >= 0) ::close(epoll_);
    if (meanwhile_epoll_ >= 0) ::close(meanwhile_epoll_);
    for (const auto& p : created_paths_) ::unlink(p.c_str());
  }

  // ----- ExportCatalog and ControlContext ---------------------------------------------------
  std::optional<nbd::ExportInfo> find(std::string_view name) const override {
    auto all = store_->list_namespaces();
    // The default export (empty name) is the only namespace, when there is exactly one.
    if (name.empty() && all.size() == 1)
      return nbd::ExportInfo{all[0].id, all[0].name, all[0].size_bytes, all[0].block_size};
    for (const auto& i : all)
      if (i.name == name && !i.quarantined) return nbd::ExportInfo{i.id, i.name, i.size_bytes, i.block_size};
    return std::nullopt;
  }
  std::vector<nbd::ExportInfo> list() const override {
    std::vector<nbd::ExportInfo> out;
    for (const auto& i : store_->list_namespaces()) out.push_back({i.id, i.name, i.size_bytes, i.block_size});
    return out;
  }
  Store& store() override { return *store_; }
  std::size_t connections_to(std::uint32_t ns) const override {
    std::size_t k = 0;
    for (const auto& [fd, c] : connections_)
      k += !c->dead && c->session.in_transmission() && c->session.export_info() && c->session.export_info()->ns == ns;
    return k;
  }
  void disconnect(std::uint32_t ns) override {
    for (auto& [fd, c] : connections_)
      if (c->session.in_transmission() && c->session.export_info() && c->session.export_info()->ns == ns)
        drop(*c, "its namespace was deleted (--force)");
    ublk_->remove(ns);
  }
  // The answer to a deferred control request goes to the connection that asked, if it is
  // still there.
  UblkExports::Waiter answer_later() {
    const std::uint64_t serial = control_serial_;
    return [this, serial](control::Response r) {
      for (auto& [fd, c] : connections_) {
        if (c->serial != serial || c->dead) continue;
        log(std::string("control: ublk: ") + (r.status.ok() ? "ok" : r.status.to_string()));
        c->out.append(as_bytes(control::encode_response(r)));
        c->awaiting_answer = false;
        c->close_when_sent = true;
        send(*c);
      }
    };
  }
  Status attach_ublk(const NamespaceInfo& ns) override { return ublk_->attach(ns, -1, answer_later()); }
  Status detach_ublk(const NamespaceInfo& ns, bool force) override { return ublk_->detach(ns, force, answer_later()); }
  std::optional<std::string> ublk_device(std::uint32_t ns) const override { return ublk_->device_of(ns); }
  control::Record daemon_status() const override {
    using namespace std::chrono;
    std::size_t nbd_clients = 0;
    for (const auto& [fd, c] : connections_) nbd_clients += !c->control && !c->dead;
    return {{"version", NYADS_VERSION},
            {"device", device_},
            {"backend", store_->device().backend()},
            {"nbd", nbd_where_},
            {"control", control_where_},
            {"nbd_connections", n(nbd_clients)},
            {"ublk_devices", n(ublk_->live_count())},
            {"writebacks_before_commit", n(writebacks_)},
            {"bytes_received_while_writing", n(received_while_writing_)},
            {"uptime_seconds",
             n(static_cast<std::uint64_t>(duration_cast<seconds>(steady_clock::now() - started_).count()))}};
  }

  // ----- epoll ----------------------------------------------------------------------------
  Status watch(int fd, std::uint32_t events, bool add) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0) return ErrnoStatus(errno, "epoll_ctl");
    return Status::Ok();
  }

  // What the daemon holds for a connection is bounded: replies waiting for the client
  // (max_queued_reply_bytes), and input not yet parsed (the next message, or 4 MiB). Past
  // either, it stops reading from that client until the client catches up.
  static constexpr std::size_t kInputSlack = 4 << 20;
  // And requests waiting for a commit: at most this many a connection.
  static constexpr std::uint32_t kMaxAwaitingCommit = 1024;
  bool wants_input(const Connection& c) const {
    return !c.close_when_sent && c.out.bytes() < options_.max_queued_reply_bytes &&
           c.in.size() < std::max(c.need, kInputSlack) && c.awaiting_commit < kMaxAwaitingCommit;
  }

  void set_interest(Connection& c) {
    if (c.dead) return;
    std::uint32_t want = 0;
    if (wants_input(c)) want |= EPOLLIN;
    if (!c.out.empty()) want |= EPOLLOUT;
    if (want != c.events) {
      c.events = want;
      (void)watch(c.fd, want, false);
    }
  }

  void drop(Connection& c, const std::string& why) {
    if (c.dead) return;
    c.dead = true;
    if (!c.control) log("connection " + c.peer + " closed: " + why);
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
    if (!c.control) ::epoll_ctl(meanwhile_epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
  }

  // ----- accepting ------------------------------------------------------------------------
  void accept_all(int listener, bool control) {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
          log(std::string("accept: ") + std::strerror(errno));
        return;
      }
      auto c = std::make_unique<Connection>(*this);
      c->fd = fd;
      c->control = control;
      if (!control) {
        // Room for a few 1 MiB replies and requests in the kernel: fewer wakeups per byte.
        const int bytes = 4 << 20;
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
      }
      static std::uint64_t next_id = 1;
      c->serial = next_id;
      c->peer = (control ? "control#" : "nbd#") + n(next_id++);
      if (!control) {
        c->session.start(c->out);
        // A turn runs the commands it parsed before it receives again, and receiving is the
        // only thing that moves or reuses the input buffer: writes can refer to it.
        c->session.set_write_payload_in_place(true);
      }
      c->events = EPOLLIN;
      if (!watch(fd, EPOLLIN, true).ok()) {
        ::close(fd);
        continue;
      }
      if (!control) {  // best effort: without it, this client's bytes wait for the next turn
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLET;
        ev.data.fd = fd;
        (void)::epoll_ctl(meanwhile_epoll_, EPOLL_CTL_ADD, fd, &ev);
      }
      Connection& ref = *c;
      connections_[fd] = std::move(c);
      send(ref);
    }
  }

  // ----- reading and writing --------------------------------------------------------------
  // Reads what is there (up to a fair share per turn), then parses it.
  void receive(Connection& c) {
    // Commands taken this turn may point into the input buffer (writes in place): receiving
    // could move it, so it waits for the next turn.
    if (!c.commands.empty()) return;
    if (!c.receive_error.empty()) return drop(c, c.receive_error);
    std::size_t budget = 8 << 20;
    while (budget > 0 && !c.dead && wants_input(c)) {
      const std::size_t want = std::max<std::size_t>(64 << 10, c.need > c.in.size() ? c.need - c.in.size() : 0);
      auto room = c.in.room(want);
      const ssize_t got = ::recv(c.fd, room.data(), room.size(), 0);
      if (got == 0) {
        // The client sends no more. Requests it sent before and not parsed yet (taken in
        // while a batch was written: receive_meanwhile) still run, and are answered to a
        // client that only shut down its sending side; then the connection closes.
        if (c.session.in_transmission() && c.in.size() > 0) {
          parse(c);
          if (!c.dead && !c.commands.empty()) {
            c.close_when_sent = true;
            return;
          }
        }
        drop(c, c.session.in_transmission() ? "the client hung up" : "the client hung up during the handshake");
        return;
      }
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) drop(c, std::string("receive: ") + std::strerror(errno));
        break;
      }
      c.in.commit(static_cast<std::size_t>(got));
      budget -= std::min<std::size_t>(budget, static_cast<std::size_t>(got));
      if (static_cast<std::size_t>(got) < room.size()) break;
    }
    parse(c);
  }

  // While a batch's writes are copied out (the emulated device's writing thread copies them
  // into its file's page cache), the loop takes in what clients send next: receiving and
  // copying overlap, as they do across nbdkit's threads, and a client whose socket buffer
  // (208 KiB by default) is full goes on sending sooner. Bytes only: they are parsed after the
  // batch, and land where the input buffer has room without moving (the batch's writes point
  // into it). A client that hung up or failed is dropped by the next turn's receive, not here.
  void receive_meanwhile() {
    ZonedDevice& dev = store_->device();
    const int done_fd = dev.writes_done_fd();
    while (dev.writing()) {
      epoll_event events[64];
      // (The timeout only guards against a wakeup lost: writing() decides.)
      const int got = ::epoll_wait(meanwhile_epoll_, events, 64, 100);
      if (got < 0 && errno != EINTR) return;  // the store waits for the writes instead
      for (int i = 0; i < std::max(got, 0); ++i) {
        const int fd = events[i].data.fd;
        if (fd == done_fd) {
          std::uint64_t count;
          (void)!::read(fd, &count, sizeof count);
          continue;
        }
        if (auto it = connections_.find(fd); it != connections_.end()) receive_in_place(*it->second);
      }
    }
  }

  void receive_in_place(Connection& c) {
    if (c.dead || c.control || !c.session.in_transmission() || c.session.closing() || !wants_input(c)) return;
    for (;;) {
      const auto room = c.in.room_in_place();
      if (room.empty()) return;  // the next turn makes room
      const ssize_t got = ::recv(c.fd, room.data(), room.size(), 0);
      if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        c.receive_error = std::string("receive: ") + std::strerror(errno);  // reported once: kept
      if (got <= 0) return;  // nothing more now, or an end the next turn's receive finds again
      c.in.commit(static_cast<std::size_t>(got));
      received_while_writing_ += static_cast<std::uint64_t>(got);
      if (static_cast<std::size_t>(got) < room.size()) return;
    }
  }

  void parse(Connection& c) {
    if (c.dead) return;
    if (c.control) return parse_control(c);
    const std::size_t room =
        options_.max_requests_per_turn - std::min(options_.max_requests_per_turn, c.commands.size());
    // Data of the commands taken this turn (reads are allocated now) plus replies waiting:
    // together at most max_queued_reply_bytes.
    const std::size_t byte_room =
        options_.max_queued_reply_bytes - std::min(options_.max_queued_reply_bytes, c.out.bytes());
    auto fed = c.session.feed(c.in.unparsed(), c.out, c.commands, room, byte_room);
    c.in.consume(fed.consumed);
    c.need = fed.need;
    if (c.session.closing()) {
      c.close_when_sent = true;
      c.in.clear();
      // Nothing left to answer: close now (send() closes once the output is out).
      if (c.commands.empty()) send(c);
    }
  }

  void parse_control(Connection& c) {
    if (c.awaiting_answer) return;
    const auto bytes = c.in.unparsed();
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    const auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      if (text.size() > control::kMaxLineBytes) {
        c.out.append(as_bytes(control::encode_response({InvalidArgument("control: request line too long"), {}})));
        c.close_when_sent = true;
      }
      return;
    }
    // A line from a terminal tool (socat, nc -C) ends in CR LF: the CR is not part of it.
    const std::string line(text.substr(0, nl > 0 && text[nl - 1] == '\r' ? nl - 1 : nl));
    c.in.consume(nl + 1);
    control::Response response;
    auto request = control::parse_request(line);
    if (!request.ok()) {
      response.status = request.status();
    } else {
      control_serial_ = c.serial;
      response = run_control(*request, *this);
      if (response.deferred) {
        log("control: " + request->command + " " + request->args[0] + ": started");
        c.awaiting_answer = true;
        return;
      }
      log("control: " + request->command + (request->args.empty() ? "" : " " + request->args[0]) + ": " +
          (response.status.ok() ? "ok" : response.status.to_string()));
    }
    c.out.append(as_bytes(control::encode_response(response)));
    c.close_when_sent = true;  // one request per connection
  }

  static std::span<const std::uint8_t> as_bytes(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

  // Sends what is queued; a connection whose session ended closes once all is sent and none
  // of its requests waits for a commit, unless may_close is false (requests taken this turn
  // are still to run and answer). So a FLUSH sent before NBD_CMD_DISC is still answered.
  void send(Connection& c, bool may_close = true) {
    while (!c.dead && !c.out.empty()) {
      iovec iov[64];
      int count = 0;
      c.out.for_each_pending(64, [&](const std::uint8_t* p, std::size_t len) {
        iov[count].iov_base = const_cast<std::uint8_t*>(p);
        iov[count].iov_len = len;
        ++count;
      });
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(count);
      const ssize_t sent = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        // A client that ended the session may hang up before reading our last words.
        if (errno != EAGAIN && errno != EWOULDBLOCK)
          drop(c, c.close_when_sent && !c.session.why().empty() ? c.session.why()
                                                                : std::string("send: ") + std::strerror(errno));
        break;
      }
      c.out.consume(static_cast<std::size_t>(sent));
    }
    if (c.dead) return;
    if (c.out.empty() && c.close_when_sent && may_close && c.awaiting_commit == 0) {
      drop(c, c.session.why().empty() ? "done" : c.session.why());
      return;
    }
    set_interest(c);
  }

  // ----- one turn: every client's requests as store batches --------------------------------
  // A turn runs every NBD request's I/O as one store batch and answers at once all that need
  // no commit: reads, writes without FUA, trims, block status, and requests refused at
  // parsing. FLUSH and FUA requests (their writes have run, as plain writes) wait for the
  // next commit, which makes everything before it durable; a connection goes on sending and
  // being answered meanwhile. NBD orders nothing among requests in flight, and a flush covers
  // the writes completed before it was sent, so that is allowed; what it buys is that plain
  // writes and reads are not answered after a commit's device flush (fdatasync on a file:
  // tens to hundreds of milliseconds under writes). The flush itself still holds the loop,
  // and so every client, unless the writeback thread does most of it (see start_commit).
  // Requests of the kernel's ublk devices run after, as a second batch that commits when they
  // ask for it, and are answered at the end of the turn.
  static bool needs_commit(const nbd::Command& cmd) {
    return cmd.error == 0 && cmd.type != nbd::kCmdBlockStatus &&
           (cmd.store.op == StoreRequest::Op::kFlush || cmd.store.fua);
  }

  // Every NBD request's I/O, as one store batch. Answers what needs no commit, and queues the
  // rest for one.
  Status run_nbd() {
    std::vector<StoreRequest> batch;
    std::vector<std::pair<Connection*, std::size_t>> owners;  // (connection, command) per request
    for (auto& [fd, c] : connections_) {
      if (c->dead) continue;
      for (std::size_t i = 0; i < c->commands.size(); ++i) {
        nbd::Command& cmd = c->commands[i];
        if (cmd.error != 0 || cmd.type == nbd::kCmdBlockStatus || cmd.store.op == StoreRequest::Op::kFlush) continue;
        batch.push_back(cmd.store);
        batch.back().fua = false;  // durable at the commit it waits for
        owners.emplace_back(c.get(), i);
      }
    }
    Status st = execute(batch, batch.size(), [this] { receive_meanwhile(); });
    for (std::size_t i = 0; i < batch.size(); ++i)
      owners[i].first->commands[owners[i].second].store.result = std::move(batch[i].result);
    for (auto& [fd, c] : connections_) {
      if (c->dead || c->commands.empty()) continue;
      for (auto& cmd : c->commands) {
        if (needs_commit(cmd) && cmd.store.result.ok()) {
          cmd.store.data = {};  // the payload is written; the input buffer moves on
          cmd.buffer = AlignedBuffer();
          awaiting_commit_.push_back({fd, c->serial, std::move(cmd)});
          ++c->awaiting_commit;
          continue;
        }
        c->session.reply(cmd, *store_, c->out);
      }
      send(*c);
    }
    return st;
  }

  // The ublk devices' requests, as a second store batch (it commits if one of them asks).
  Status run_kernel(std::vector<UblkExports::Pending>& kernel, const Status* failed) {
    std::vector<StoreRequest> batch;
    for (const auto& p : kernel)
      if (p.request.runnable) batch.push_back(p.request.store);
    Status st = Status::Ok();
    if (failed != nullptr)
      for (auto& r : batch) r.result = *failed;
    else
      st = execute(batch, batch.size(), [this] { receive_meanwhile(); });
    std::size_t next = 0;
    for (const auto& p : kernel) ublk_->answer(p, p.request.runnable ? batch[next++].result : Status::Ok());
    return st;
  }

  // Runs a store batch that `waiting` requests' answers wait for, and logs it when it was
  // slow: clients waited this long, worth a line for whoever watches latency.
  Status execute(std::span<StoreRequest> batch, std::size_t waiting, const std::function<void()>& meanwhile = {}) {
    if (batch.empty()) return Status::Ok();
    const auto t0 = std::chrono::steady_clock::now();
    Status st = store_->execute(batch, meanwhile);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (ms >= 500)
      log("slow turn: " + n(static_cast<std::uint64_t>(ms)) + " ms for " + n(waiting) +
          " requests (cleaning, a checkpoint or a commit)");
    return st;
  }

  // Below this much written since the last flush, a commit runs at once, in the loop.
  static constexpr std::uint64_t kWritebackBeforeCommitBytes = 8 << 20;

  // Starts the commit that answers the requests waiting for one. A commit's device flush
  // blocks the loop, and on a file it writes out every dirty page (with the writeback kicks,
  // a few MiB plus what the disk has not caught up with; measured with a kick every 64 MiB:
  // 60 ms typical and 480 ms at worst under 1 MiB writes with a flush every 64, every other
  // client stalled meanwhile). So when 8 MiB or more were written since the last flush, the
  // writeback thread writes the file back first (fdatasync) while the loop goes on serving;
  // the commit, when the thread is done, has only what came meanwhile left. Below that, the
  // commit runs at once.
  Status start_commit() {
    if (awaiting_commit_.empty() || writeback_.busy()) return Status::Ok();
    auto job = store_->device().writeback_job(kWritebackBeforeCommitBytes);
    if (!job) return finish_commit();
    if (Status started = writeback_.start(std::move(job)); !started.ok()) {
      log(started.to_string() + ": committing in the loop");
      return finish_commit();
    }
    ++writebacks_;
    return Status::Ok();
  }

  // The idle work commits what clients wrote and did not flush, and that commit's device
  // flush blocks the loop as any does. After writes that died in the page cache (no
  // writeback was started for them: zns/emulated_device.cc) it can find the whole rewritten
  // set dirty, a gigabyte: so with 64 MiB or more written since the last flush the writeback
  // thread writes the file back first, and the idle work runs at the next quiet moment.
  // (Below that, as after a slice of cleaning ahead, an eighth of a zone, 8 MiB with 64 MiB
  // zones, the commit runs at once: tens of milliseconds, and cleaning ahead keeps its pace.)
  static constexpr std::uint64_t kWritebackBeforeIdleCommitBytes = 64 << 20;
  bool start_idle_writeback() {
    auto job = store_->device().writeback_job(kWritebackBeforeIdleCommitBytes);
    if (!job || !writeback_.start(std::move(job)).ok()) return false;
    ++writebacks_;
    idle_written_back_ = true;
    return true;
  }

  // Commits, and answers every request waiting for a commit: each was received, and its
  // writes run, before this commit started, so it covers them. With `failed` set (the store
  // failed as a whole: the daemon stops), answers them with it instead, committing nothing:
  // a commit tried again after a failure must not answer for writes it may not cover.
  Status finish_commit(const Status* failed = nullptr) {
    if (awaiting_commit_.empty()) return Status::Ok();
    StoreRequest flush = StoreRequest::flush();
    Status st = Status::Ok();
    if (failed != nullptr)
      flush.result = *failed;
    else
      st = execute(std::span(&flush, 1), awaiting_commit_.size());
    std::vector<AwaitingCommit> answered;
    answered.swap(awaiting_commit_);
    std::vector<Connection*> touched;
    for (auto& w : answered) {
      auto it = connections_.find(w.fd);
      if (it == connections_.end() || it->second->serial != w.serial || it->second->dead) continue;
      Connection& c = *it->second;
      w.command.store.result = flush.result;
      c.session.reply(w.command, *store_, c.out);
      --c.awaiting_commit;
      touched.push_back(&c);
    }
    for (Connection* c : touched) send(*c, /*may_close=*/c->commands.empty());
    return st;
  }

  Status run_batch() {
    std::vector<UblkExports::Pending> kernel;
    ublk_->poll(kernel);
    Status st = run_nbd();
    // The store failed as a whole (the daemon stops): the ublk requests fail with it, unrun.
    Status second = run_kernel(kernel, st.ok() ? nullptr : &st);
    if (st.ok()) st = second;
    ublk_->finish_turn();
    for (auto& [fd, c] : connections_) c->commands.clear();
    if (st.ok()) st = start_commit();
    if (!st.ok()) log("store: " + st.to_string());
    return st;
  }

  void reap_dead() {
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->second->dead) {
        ::close(it->first);
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // An NBD connection whose input the loop may parse now: nothing taken yet this turn, and
  // room for more replies.
  bool may_parse(const Connection& c) const {
    return !c.dead && !c.control && c.commands.empty() && c.out.bytes() < options_.max_queued_reply_bytes &&
           c.awaiting_commit < kMaxAwaitingCommit;
  }

  // Whether some connection holds a whole message that a previous turn's limit left unparsed
  // (need is 0 then), so the loop must not sleep.
  bool has_unparsed_work() const {
    for (const auto& [fd, c] : connections_) {
      const std::size_t avail = c->in.size();
      if (may_parse(*c) && c->session.in_transmission() && avail > 0 && (c->need == 0 || avail >= c->need)) return true;
    }
    return false;
  }

  Status loop() {
    int idle_ms = 1000;
    bool stopping = false;
    auto stop_deadline = std::chrono::steady_clock::now();
    for (;;) {
      epoll_event events[64];
      const bool busy = has_unparsed_work();
      const int timeout = busy ? 0 : idle_ms;
      const int got = ::epoll_wait(epoll_, events, 64, timeout);
      if (got < 0 && errno != EINTR) return ErrnoStatus(errno, "epoll_wait");
      bool stop = false, written_back = false;
      for (int i = 0; i < std::max(got, 0); ++i) {
        const int fd = events[i].data.fd;
        if (fd == signal_fd_) {
          signalfd_siginfo si{};
          if (::read(signal_fd_, &si, sizeof si) == sizeof si)
            log(std::string("received ") + ::strsignal(static_cast<int>(si.ssi_signo)) + ": stopping");
          stop = true;
          continue;
        }
        if (fd == control_listener_) {
          accept_all(fd, true);
          continue;
        }
        if (fd == writeback_.fd()) {
          written_back = true;
          continue;
        }
        if (std::find(nbd_listeners_.begin(), nbd_listeners_.end(), fd) != nbd_listeners_.end()) {
          accept_all(fd, false);
          continue;
        }
        auto it = connections_.find(fd);
        if (it == connections_.end() || it->second->dead) continue;
        Connection& c = *it->second;
        // A client gone while nothing is read from it (its session ended, or its requests
        // wait for a commit): epoll reports that whatever it watches, so it goes now.
        if ((events[i].events & (EPOLLHUP | EPOLLERR)) && !wants_input(c)) {
          drop(c, c.session.in_transmission() ? "the client hung up" : "the client hung up during the handshake");
          continue;
        }
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(c);
        // Not closed here while it has requests taken this turn (a session ended by DISC right
        // after them): the turn answers them first.
        if (!c.dead && (events[i].events & EPOLLOUT)) send(c, /*may_close=*/c.commands.empty());
      }
      // Connections with parsed-but-untaken input (a previous turn's limit): parse on.
      for (auto& [fd, c] : connections_)
        if (may_parse(*c)) parse(*c);
      for (auto& [fd, c] : connections_)
        if (!c->dead && c->commands.empty() && !c->out.empty()) send(*c);
      NYADS_RETURN_IF_ERROR(run_batch());
      // The writeback before a commit is done: the commit, for every request waiting.
      if (written_back) {
        writeback_.finished();
        NYADS_RETURN_IF_ERROR(finish_commit());
        if (idle_written_back_) idle_ms = std::min(idle_ms, 100);  // its commit, soon
      }
      // Anything else that came (writes, say) makes the file written back stale.
      if (std::max(got, 0) > (written_back ? 1 : 0)) idle_written_back_ = false;
      for (auto& [fd, c] : connections_) set_interest(*c);  // input consumed, replies queued
      reap_dead();
      if (stop && !stopping) {
        // ublk devices go first (the kernel deletes their disks through us); then we return.
        stopping = true;
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        ublk_->remove_all();
      }
      if (stopping) {
        if (ublk_->empty()) return Status::Ok();
        if (std::chrono::steady_clock::now() > stop_deadline) {
          log("stopping: ublk devices still being removed after 15 s; leaving them to the kernel");
          return Status::Ok();
        }
        idle_ms = 100;
        continue;
      }
      // The store's idle work, only when the loop slept its full timeout: under load,
      // checkpoints come by journal size and cleaning by slices, so clients never wait for it.
      // Not after a poll that did not wait (input left over by a turn's limits): that ran a
      // commit, with its fdatasync, every turn while a client kept more than a turn queued.
      if (got == 0 && !busy) {
        // Not beside a writeback job: its end is an event, and the idle work follows it.
        if (writeback_.busy() || (!idle_written_back_ && start_idle_writeback())) {
          idle_ms = std::max(idle_ms, 100);
          continue;
        }
        idle_written_back_ = false;
        auto wait = store_->idle_work();
        if (!wait.ok()) return wait.status();
        idle_ms = static_cast<int>(std::min<std::uint32_t>(*wait, 30000));
      }
    }
  }
};

Daemon::Daemon(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Daemon::~Daemon() = default;

Result<std::unique_ptr<Daemon>> Daemon::create(std::unique_ptr<Store> store, std::string device_path,
                                               const DaemonOptions& options, InheritedSockets inherited) {
  auto impl = std::make_unique<Impl>();
  impl->store_ = std::move(store);
  impl->device_ = std::move(device_path);
  impl->options_ = options;
  impl->epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (impl->epoll_ < 0) return ErrnoStatus(errno, "epoll_create1");
  impl->meanwhile_epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (impl->meanwhile_epoll_ < 0) return ErrnoStatus(errno, "epoll_create1");
  if (const int done_fd = impl->store_->device().writes_done_fd(); done_fd >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = done_fd;
    if (::epoll_ctl(impl->meanwhile_epoll_, EPOLL_CTL_ADD, done_fd, &ev) != 0)
      return ErrnoStatus(errno, "epoll_ctl (the device's writes-done eventfd)");
  }
  NYADS_RETURN_IF_ERROR(impl->writeback_.init());
  NYADS_RETURN_IF_ERROR(impl->watch(impl->writeback_.fd(), EPOLLIN, true));
  impl->ublk_ = std::make_unique<UblkExports>(options.run_dir + "/ublk", impl->epoll_,
                                              [](const std::string& line) { log(line); });
  const bool activated = inherited.nbd >= 0 || inherited.control >= 0;
  // NBD: inherited, or our own unix socket (only when nothing was inherited, or asked for).
  if (inherited.nbd >= 0) {
    impl->nbd_listeners_.push_back(inherited.nbd);
    impl->nbd_where_ = "fd " + n(static_cast<std::uint64_t>(inherited.nbd)) + " (socket activation)";
  } else {
    const std::string path = options.nbd_socket.empty() ? options.run_dir + "/nbd.sock" : options.nbd_socket;
    auto fd = listen_unix(path, options.socket_mode);
    if (!fd.ok()) return fd.status();
    impl->nbd_listeners_.push_back(*fd);
    impl->created_paths_.push_back(path);
    impl->nbd_where_ = path;
  }
  if (!options.tcp.empty()) {
    auto fd = listen_tcp(options.tcp);
    if (!fd.ok()) return fd.status();
    impl->nbd_listeners_.push_back(*fd);
    impl->nbd_where_ += " tcp:" + tcp_address(*fd);
  }
  if (inherited.control >= 0) {
    impl->control_listener_ = inherited.control;
    impl->control_where_ = "fd " + n(static_cast<std::uint64_t>(inherited.control));
  } else if (!activated || !options.control_socket.empty()) {
    const std::string path =
        options.control_socket.empty() ? options.run_dir + "/control.sock" : options.control_socket;
    auto fd = listen_unix(path, options.socket_mode);
    if (!fd.ok()) return fd.status();
    impl->control_listener_ = *fd;
    impl->created_paths_.push_back(path);
    impl->control_where_ = path;
  }
  for (int fd : impl->nbd_listeners_) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    NYADS_RETURN_IF_ERROR(impl->watch(fd, EPOLLIN, true));
  }
  if (impl->control_listener_ >= 0) {
    ::fcntl(impl->control_listener_, F_SETFL, ::fcntl(impl->control_listener_, F_GETFL) | O_NONBLOCK);
    NYADS_RETURN_IF_ERROR(impl->watch(impl->control_listener_, EPOLLIN, true));
  }
  // SIGTERM, SIGINT and SIGHUP (the terminal went away) arrive through the loop, so a stop
  // never interrupts a batch.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  impl->signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (impl->signal_fd_ < 0) return ErrnoStatus(errno, "signalfd");
  NYADS_RETURN_IF_ERROR(impl->watch(impl->signal_fd_, EPOLLIN, true));
  return std::unique_ptr<Daemon>(new Daemon(std::move(impl)));
}

Status Daemon::run() {
  Impl& d = *impl_;
  log("serving NBD on " + d.nbd_where_ + (d.control_where_.empty() ? "" : ", control on " + d.control_where_) + " (" +
      n(d.store_->list_namespaces().size()) + " namespaces)");
  // Devices a killed daemon left behind: freed, and their namespaces attached again.
  d.ublk_->restore(*d.store_);
  notify_ready("serving " + n(d.store_->list_namespaces().size()) + " namespaces");
  Status st = d.loop();
  // Whatever ended the loop: answer what is queued (the requests waiting for a commit too),
  // then make everything durable.
  if (d.writeback_.busy()) d.writeback_.wait();
  if (Status committed = d.finish_commit(st.ok() ? nullptr : &st); !committed.ok() && st.ok()) st = committed;
  for (auto& [fd, c] : d.connections_)
    if (!c->dead) d.send(*c);
  Status closed = d.store_->close();
  if (!closed.ok()) {
    log("closing the store: " + closed.to_string());
    if (st.ok()) st = closed;
  } else {
    log("stopped: everything flushed and checkpointed");
  }
  return st;
}

}  // namespace nyads::daemon
