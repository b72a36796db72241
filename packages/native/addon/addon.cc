// The Node binding: translation only. Validation happens in TypeScript (core/src/native.ts is the typed
// view of these functions); the C library does the system calls; errors are thrown as the SDK's own
// ZerobootError through the factory the SDK hands over in init().
#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

extern "C" {
#include "channel.h"
#include "protocol.h"
}

namespace {

struct AddonState {
  Napi::FunctionReference error_factory;  // (step, errno, message) => ZerobootError
};

Napi::Error MakeError(Napi::Env env, const zb_error& err) {
  auto* state = env.GetInstanceData<AddonState>();
  if (state != nullptr && !state->error_factory.IsEmpty()) {
    Napi::Value value = state->error_factory.Call(
        {Napi::Number::New(env, err.step), Napi::Number::New(env, err.errnum), Napi::String::New(env, err.message)});
    return Napi::Error(env, value);
  }
  return Napi::Error::New(env, err.message);
}

int FdArg(const Napi::CallbackInfo& info, size_t index) {
  return info[index].As<Napi::Number>().Int32Value();
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  auto* state = info.Env().GetInstanceData<AddonState>();
  state->error_factory = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value ChannelPair(const Napi::CallbackInfo& info) {
  zb_error err{};
  int fds[2];
  if (zb_channel_pair(fds, &err) < 0)
    throw MakeError(info.Env(), err);
  auto result = Napi::Array::New(info.Env(), 2);
  result.Set(uint32_t{0}, fds[0]);
  result.Set(uint32_t{1}, fds[1]);
  return result;
}

Napi::Value Send(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0);
  auto data = info[1].As<Napi::Uint8Array>();
  std::vector<int> fds;
  if (info.Length() > 2 && info[2].IsArray()) {
    auto array = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < array.Length(); i++)
      fds.push_back(array.Get(i).As<Napi::Number>().Int32Value());
  }
  zb_error err{};
  if (zb_channel_send(fd, data.Data(), data.ByteLength(), fds.data(), (int)fds.size(), MSG_DONTWAIT, &err) < 0)
    throw MakeError(info.Env(), err);
  return info.Env().Undefined();
}

// One message: { data: Buffer, fds: number[] }; null when nothing is queued; false at EOF.
Napi::Value ReceiveOne(Napi::Env env, int fd, bool* more) {
  // Every message on these channels is a zb_message (at most 256 bytes). A larger one, which only code in
  // a sandbox could send, is cut here by the kernel and ends the watch (MSG_TRUNC): cheap to refuse, so
  // that a sandbox flooding its socket with large messages cannot make the SDK copy megabytes.
  static thread_local std::vector<uint8_t> buffer(512);
  int fds[ZB_CHANNEL_MAX_FDS];
  int fd_count = 0;
  zb_error err{};
  ssize_t n = zb_channel_recv(fd, buffer.data(), buffer.size(), fds, &fd_count, &err);
  *more = false;
  if (n < 0) {
    if (err.errnum == EAGAIN || err.errnum == EWOULDBLOCK)
      return env.Null();
    if (err.errnum == ECONNRESET)
      return Napi::Boolean::New(env, false);
    throw MakeError(env, err);
  }
  if (n == 0)
    return Napi::Boolean::New(env, false);
  *more = true;
  auto message = Napi::Object::New(env);
  message.Set("data", Napi::Buffer<uint8_t>::Copy(env, buffer.data(), (size_t)n));
  auto fd_array = Napi::Array::New(env, (size_t)fd_count);
  for (int i = 0; i < fd_count; i++)
    fd_array.Set((uint32_t)i, fds[i]);
  message.Set("fds", fd_array);
  return message;
}

Napi::Value Receive(const Napi::CallbackInfo& info) {
  bool more;
  return ReceiveOne(info.Env(), FdArg(info, 0), &more);
}

// Watches an fd on the event loop. Mode 0: a SOCK_SEQPACKET channel, one callback per message
// ({data, fds}); mode 1: a pipe, one callback per chunk read (a Buffer). Then once with false at EOF.
// Reading output here rather than through net.Socket saves ~0.1 ms per run of stream setup and teardown.
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watcher", {InstanceMethod("close", &Watcher::Close)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    fd_ = FdArg(info, 0);
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    stream_ = info.Length() > 2 && info[2].As<Napi::Number>().Int32Value() == 1;
    uv_loop_s* loop = nullptr;
    napi_get_uv_event_loop(info.Env(), &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      throw Napi::Error::New(info.Env(), "uv_poll_init failed");
    }
    uv_poll_start(poll_, UV_READABLE | UV_DISCONNECT, &Watcher::OnReadable);
    // Alive while polling, whatever JS holds. The callback is a strong reference, and its closure usually
    // holds this watcher (to close it): once done, the watcher lets go of it, or the pair could never be
    // collected and every run would leak its watchers, buffers and closures (~2 kB a run).
    Ref();
  }

  ~Watcher() override { Stop(); }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<Watcher*>(handle->data);
    self->Drain(status);
  }

  void Drain(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    bool eof = status < 0;
    if (stream_) {
      DrainStream(status);
      return;
    }
    for (int i = 0; i < 256 && !eof && poll_ != nullptr; i++) {
      bool more = false;
      Napi::Value message;
      try {
        message = ReceiveOne(env, fd_, &more);
      } catch (const Napi::Error&) {
        eof = true;
        break;
      }
      if (message.IsNull())
        return;
      if (message.IsBoolean()) {
        eof = true;
        break;
      }
      Deliver(message);
    }
    if (eof && poll_ != nullptr) {
      Stop();
      Deliver(Napi::Boolean::New(env, false));
      callback_.Reset();
    }
  }

  void DrainStream(int status) {
    Napi::Env env = Env();
    static thread_local std::vector<uint8_t> buffer(64 * 1024);
    bool eof = status < 0;
    // Bounded per wake-up so that one flooding sandbox cannot starve the event loop.
    for (int i = 0; i < 16 && !eof && poll_ != nullptr; i++) {
      ssize_t n = read(fd_, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0) {
        eof = true;
        break;
      }
      Deliver(Napi::Buffer<uint8_t>::Copy(env, buffer.data(), (size_t)n));
    }
    if (eof && poll_ != nullptr) {
      Stop();
      close(fd_);
      fd_ = -1;
      Deliver(Napi::Boolean::New(env, false));
      callback_.Reset();
    }
  }

  void Deliver(Napi::Value value) {
    Napi::Env env = Env();
    if (callback_.IsEmpty())
      return; // closed from JS meanwhile
    try {
      callback_.MakeCallback(env.Global(), {value});
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
  }

  void Stop() {
    if (poll_ == nullptr)
      return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    Unref();
  }

  // Stops watching. A stream watcher owns its fd and closes it; a channel watcher leaves it to the caller.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    if (stream_ && fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
    callback_.Reset();
    return info.Env().Undefined();
  }

  bool stream_ = false;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
};

Napi::Value Close(const Napi::CallbackInfo& info) {
  close(FdArg(info, 0));
  return info.Env().Undefined();
}

Napi::Value Memfd(const Napi::CallbackInfo& info) {
  auto data = info[0].As<Napi::Uint8Array>();
  zb_error err{};
  int fd = zb_memfd_from(data.Data(), data.ByteLength(), &err);
  if (fd < 0)
    throw MakeError(info.Env(), err);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value PidfdSignal(const Napi::CallbackInfo& info) {
  zb_error err{};
  if (zb_pidfd_signal(FdArg(info, 0), FdArg(info, 1), &err) < 0)
    throw MakeError(info.Env(), err);
  return info.Env().Undefined();
}

// ---- the layer store's few system calls Node lacks (core/src/layers.ts). None follows a symlink. ----

Napi::Error SystemError(Napi::Env env, int errnum, const char* call, const std::string& path) {
  auto error = Napi::Error::New(env, std::string(uv_err_name(-errnum)) + ": " + uv_strerror(-errnum) + ", " + call + " '" + path + "'");
  error.Set("code", Napi::String::New(env, uv_err_name(-errnum)));
  error.Set("errno", Napi::Number::New(env, errnum));
  error.Set("syscall", Napi::String::New(env, call));
  return error;
}

// (path, name) => Buffer, or null when the entry has no such attribute
Napi::Value GetXattr(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>(), name = info[1].As<Napi::String>();
  char value[256];
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP)
      return info.Env().Null();
    throw SystemError(info.Env(), errno, "lgetxattr", path);
  }
  return Napi::Buffer<char>::Copy(info.Env(), value, static_cast<size_t>(n));
}

// (path, name, value: Uint8Array) => void
Napi::Value SetXattr(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>(), name = info[1].As<Napi::String>();
  auto value = info[2].As<Napi::Uint8Array>();
  if (lsetxattr(path.c_str(), name.c_str(), value.Data(), value.ByteLength(), 0) < 0)
    throw SystemError(info.Env(), errno, "lsetxattr", path);
  return info.Env().Undefined();
}

// (path) => void: an overlayfs whiteout, the character device 0:0
Napi::Value MknodWhiteout(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  if (mknod(path.c_str(), S_IFCHR | 0, makedev(0, 0)) < 0)
    throw SystemError(info.Env(), errno, "mknod", path);
  return info.Env().Undefined();
}

// (root, rel, kind: 'dir' | 'file') => fd: rel opened below the directory root without passing through any
// symlink, magic link or mount point, whatever another process does meanwhile (openat2 RESOLVE_BENEATH |
// NO_SYMLINKS | NO_MAGICLINKS | NO_XDEV). 'dir': an O_PATH fd on a directory; 'file': a read-only fd, which
// fstat then tells the type of. The root itself is the caller's (a layer, or /proc/self/fd/N on an upper dir).
Napi::Value OpenBeneath(const Napi::CallbackInfo& info) {
  std::string root = info[0].As<Napi::String>(), rel = info[1].As<Napi::String>(), kind = info[2].As<Napi::String>();
  int dir = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    throw SystemError(info.Env(), errno, "open", root);
  struct open_how how {};
  how.flags = O_CLOEXEC | (kind == "dir" ? O_PATH | O_DIRECTORY : O_RDONLY | O_NOCTTY | O_NONBLOCK);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = syscall(SYS_openat2, dir, rel.empty() ? "." : rel.c_str(), &how, sizeof how);
  int saved = errno;
  close(dir);
  if (fd < 0)
    throw SystemError(info.Env(), saved, "openat2", root + "/" + rel);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonState());
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("channelPair", Napi::Function::New(env, ChannelPair));
  exports.Set("send", Napi::Function::New(env, Send));
  exports.Set("receive", Napi::Function::New(env, Receive));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("memfd", Napi::Function::New(env, Memfd));
  exports.Set("pidfdSignal", Napi::Function::New(env, PidfdSignal));
  exports.Set("getXattr", Napi::Function::New(env, GetXattr));
  exports.Set("setXattr", Napi::Function::New(env, SetXattr));
  exports.Set("mknodWhiteout", Napi::Function::New(env, MknodWhiteout));
  exports.Set("openBeneath", Napi::Function::New(env, OpenBeneath));
  exports.Set("Watcher", Watcher::Define(env));
  exports.Set("protocolVersion", Napi::Number::New(env, ZB_PROTOCOL_VERSION));
  return exports;
}

}  // namespace

NODE_API_MODULE(zeroboot_native, InitModule)
