// The Node fork-server's binding to libzeroboot (zygote.cjs is its only user). Setup failures end the
// process the way the Python runtime's do (exit 70 + step, message on stderr): the SDK reads both.
#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

extern "C" {
#include "protocol.h"
#include "zeroboot.h"
}

namespace {

// The fds Node had open before libzeroboot made any (above 3, the control socket): libuv's loops, each
// thread's. See ForkLoop.
std::vector<int> runtime_fds;

// In a sandbox: the numbers of those that are not the main loop's new fds, kept on /dev/null (see ForkLoop).
std::vector<int> dead_fds;

[[noreturn]] void FailSetup(const zb_error& err) {
  std::fprintf(stderr, "zeroboot fork-server: %s\n", err.message);
  _exit(70 + (err.step < 50 ? err.step : 50));
}

Napi::Value RecordFds(const Napi::CallbackInfo& info) {
  runtime_fds.clear();
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    zb_error err{};
    err.step = ZB_STEP_CONFIG;
    err.errnum = errno;
    std::snprintf(err.message, sizeof err.message, "list /proc/self/fd: %s", std::strerror(errno));
    FailSetup(err);
  }
  int own = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (entry->d_name[0] != '.' && fd > 3 && fd != own)
      runtime_fds.push_back(fd);
  }
  closedir(dir);
  return Napi::Number::New(info.Env(), static_cast<double>(runtime_fds.size()));
}

Napi::Value ConfigSet(const Napi::CallbackInfo& info) {
  std::string key = info[0].As<Napi::String>();
  std::string value = info[1].As<Napi::String>();
  zb_error err{};
  if (zb_config_set(key.c_str(), value.c_str(), &err) < 0)
    FailSetup(err);
  return info.Env().Undefined();
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  zb_error err{};
  if (zb_zygote_init(&err) < 0)
    FailSetup(err);
  return info.Env().Undefined();
}

[[noreturn]] void FailSandbox(const char* what, int errnum) {
  zb_error err{};
  err.step = ZB_STEP_REQUEST;
  err.errnum = errnum;
  std::snprintf(err.message, sizeof err.message, "%s", what);
  zb_sandbox_fail(&err);
}

using FdIdentity = std::pair<dev_t, ino_t>;

// Every open fd above the request socket, with what it refers to.
std::map<int, FdIdentity> OpenFds() {
  std::map<int, FdIdentity> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr)
    FailSandbox("list /proc/self/fd", errno);
  int own = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    struct stat st;
    if (entry->d_name[0] != '.' && fd > 3 && fd != own && fstat(fd, &st) == 0)
      fds[fd] = {st.st_dev, st.st_ino};
  }
  closedir(dir);
  return fds;
}

// In a new sandbox, first thing: gives the main loop kernel objects of its own. Until now it shares the
// fork-server's epoll instance, eventfd and signal pipe (a fork copies fds, not the objects behind them),
// whose numbers are closed here; anything that wakes the loop (V8 posting a task to it, on an allocation
// that crosses a GC threshold) would write to a closed fd, and libuv aborts. uv_loop_fork() closes the old
// numbers and opens new ones; so that it closes nothing of the library's, every old number that is free
// is first taken by /dev/null, and every fd that was open must still be open after it. The numbers it does
// not close belong to loops of threads that do not exist in this process (Node's platform workers): they
// stay on /dev/null, so that whatever might still write to them writes nowhere. The new fds are kept
// through zb_sandbox_wait(), which closes the others (and Wait() puts /dev/null back on the dead numbers).
// Done before parking, so that the run does not pay for it, and so that the sandbox can run its event loop
// before parking.
void ForkLoop(Napi::Env env) {
  std::map<int, FdIdentity> before = OpenFds();
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  struct stat null_stat;
  if (null_fd < 0 || fstat(null_fd, &null_stat) < 0)
    FailSandbox("open /dev/null", errno);
  const FdIdentity null_id{null_stat.st_dev, null_stat.st_ino};
  for (int fd : runtime_fds)
    if (before.count(fd) == 0 && fd != null_fd)
      dup3(null_fd, fd, O_CLOEXEC);
  // null_fd itself may be one of the old numbers, and then stays as their placeholder.
  if (std::find(runtime_fds.begin(), runtime_fds.end(), null_fd) == runtime_fds.end())
    close(null_fd);
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_loop_fork(loop) != 0)
    FailSandbox("uv_loop_fork failed", 0);
  std::map<int, FdIdentity> after = OpenFds();
  for (const auto& [fd, id] : before) {
    auto now = after.find(fd);
    if (now == after.end() || now->second != id)
      FailSandbox("uv_loop_fork closed an fd that was not the event loop's", EBADF);
  }
  dead_fds.clear();
  for (const auto& [fd, id] : after) {
    bool is_runtime_fd = std::find(runtime_fds.begin(), runtime_fds.end(), fd) != runtime_fds.end();
    if (is_runtime_fd && id == null_id) {
      dead_fds.push_back(fd);
    } else if (before.count(fd) == 0 || (is_runtime_fd && before.at(fd) != id)) {
      zb_error err{};
      if (zb_sandbox_keep_fd(fd, &err) < 0)
        zb_sandbox_fail(&err);
    }
  }
  // Old numbers the library was using (its fixed fds): closed by zb_sandbox_wait(), then dead numbers too.
  for (int fd : runtime_fds)
    if (before.count(fd) != 0)
      dead_fds.push_back(fd);
}

// 1 in the server after an orderly shutdown, 0 in a new sandbox, whose event loop is then its own.
Napi::Value Serve(const Napi::CallbackInfo& info) {
  zb_error err{};
  int rc = zb_zygote_serve(&err);
  if (rc < 0)
    FailSetup(err);
  if (rc == 0)
    ForkLoop(info.Env());
  return Napi::Number::New(info.Env(), rc);
}

// After zb_sandbox_wait(), which closed every fd but 0-3 and the event loop's: /dev/null on the dead
// numbers again (see ForkLoop).
void GuardDeadFds() {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0)
    return;
  for (int fd : dead_fds)
    if (fd != null_fd)
      dup3(null_fd, fd, O_CLOEXEC);
  if (std::find(dead_fds.begin(), dead_fds.end(), null_fd) == dead_fds.end())
    close(null_fd);
}

// Parks until the run's request arrives; returns [code, name, value, name, value, ...]: the code and the
// environment variables it sets. One flat array: each object, nested array and named property made here
// is one more first-time path through V8 on the run's clock.
Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* request = nullptr;
  uint32_t size = 0;
  zb_error err{};
  if (zb_sandbox_wait(&request, &size, &err) < 0)
    zb_sandbox_fail(&err);
  GuardDeadFds();
  auto result = Napi::Array::New(env);
  result.Set(uint32_t{0}, Napi::String::New(env, ""));
  uint32_t offset = 0, type = 0, length = 0, count = 1;
  const uint8_t* data = nullptr;
  while (zb_request_next_field(request, size, &offset, &type, &data, &length) > 0) {
    const char* text = reinterpret_cast<const char*>(data);
    if (type == ZB_FIELD_CODE) {
      result.Set(uint32_t{0}, Napi::String::New(env, text, length));
    } else if (type == ZB_FIELD_ENV) {
      const void* eq = std::memchr(text, '=', length);
      if (eq == nullptr)
        continue;
      size_t name_length = static_cast<const char*>(eq) - text;
      result.Set(count++, Napi::String::New(env, text, name_length));
      result.Set(count++, Napi::String::New(env, text + name_length + 1, length - name_length - 1));
    }
  }
  return result;
}

// A seed for V8's Math.random, from the kernel: every sandbox starts from the same memory.
Napi::Value Seed(const Napi::CallbackInfo& info) {
  uint32_t seed = 0;
  while (seed == 0 || seed > 0x7fffffffu) {
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
      seed = static_cast<uint32_t>(uv_hrtime());
    seed &= 0x7fffffffu;
  }
  return Napi::Number::New(info.Env(), seed);
}

// Before the request: tells the SDK this sandbox cannot run (RUN_FAILED) and exits.
Napi::Value Fail(const Napi::CallbackInfo& info) {
  std::string message = info[0].As<Napi::String>();
  zb_error err{};
  err.step = ZB_STEP_REQUEST;
  std::snprintf(err.message, sizeof err.message, "%s", message.c_str());
  zb_sandbox_fail(&err);
}

Napi::Value Finish(const Napi::CallbackInfo& info) {
  zb_sandbox_finish(info[0].As<Napi::Number>().Int32Value() & 0xff);
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("recordFds", Napi::Function::New(env, RecordFds));
  exports.Set("configSet", Napi::Function::New(env, ConfigSet));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("serve", Napi::Function::New(env, Serve));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("seed", Napi::Function::New(env, Seed));
  exports.Set("fail", Napi::Function::New(env, Fail));
  exports.Set("finish", Napi::Function::New(env, Finish));
  return exports;
}

}  // namespace

NODE_API_MODULE(zeroboot_zygote, InitModule)
