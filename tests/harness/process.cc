#include "tests/harness/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "tests/harness/redis_cluster.h"

namespace harness {

Process::Process(std::string binary, std::vector<std::string> args,
                 std::map<std::string, std::string> env)
    : binary_(std::move(binary)), args_(std::move(args)), env_(std::move(env)) {}

Process::~Process() { Stop(std::chrono::milliseconds(2000)); }

void Process::Start() {
  if (pid_ > 0) return;
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    if (!output_file_.empty()) {
      int fd = open(output_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    for (const auto& [key, value] : env_) setenv(key.c_str(), value.c_str(), 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary_.c_str()));
    for (auto& arg : args_) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(binary_.c_str(), argv.data());
    std::perror(("exec " + binary_).c_str());
    _exit(127);
  }
  pid_ = pid;
}

void Process::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
}

std::optional<int> Process::WaitForExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

void Process::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

namespace {
std::string MakeTempDir() {
  char pattern[] = "/tmp/kudos-test-redis-XXXXXX";
  char* dir = mkdtemp(pattern);
  if (dir == nullptr) throw std::runtime_error("mkdtemp failed");
  return dir;
}
}  // namespace

bool ClusterModeFromEnvironment() {
  const char* mode = std::getenv(kTestRedisEnv);
  return mode != nullptr && std::string(mode) == "cluster";
}

namespace {
std::unique_ptr<RedisCluster> ClusterIfAsked(const std::vector<std::string>& extra_args) {
  if (!ClusterModeFromEnvironment()) return nullptr;
  RedisCluster::Options options;
  options.extra_args = extra_args;
  // These suites never stop a node; a node the loaded machine starves of CPU
  // for 3 s must not be marked failed and take the whole cluster down
  // (Redis's own default, 15 s).
  options.node_timeout_ms = 15000;
  return std::make_unique<RedisCluster>(options);
}
}  // namespace

RedisServer::RedisServer() : RedisServer(std::vector<std::string>{}) {}

RedisServer::RedisServer(std::vector<std::string> extra_args)
    : cluster_(ClusterIfAsked(extra_args)),
      port_(cluster_ ? cluster_->port(0) : FreePort()),
      dir_(cluster_ ? "" : MakeTempDir()),
      process_(REDIS_SERVER_BINARY, [&] {
        std::vector<std::string> args = {REDIS_PLATFORM_CONF, "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                         "--dir", dir_, "--save", "", "--appendonly", "no",
                                         "--daemonize", "no", "--loglevel", "warning"};
        args.insert(args.end(), extra_args.begin(), extra_args.end());
        return args;
      }()) {
  if (cluster_) return;  // RedisCluster started its nodes and waited for cluster_state:ok
  process_.Start();
  if (!WaitForPort(port_, std::chrono::seconds(10))) {
    throw std::runtime_error("redis-server did not start");
  }
}

RedisServer::~RedisServer() {
  if (cluster_) {
    cluster_.reset();  // every node stopped, its folder removed
    return;
  }
  process_.Stop();
  std::string command = "rm -rf '" + dir_ + "'";
  if (std::system(command.c_str()) != 0) std::perror("rm");
}

std::string RedisServer::seeds() const { return cluster_ ? cluster_->seeds() : address(); }

void RedisServer::Restart() {
  if (cluster_) {
    for (int node = 0; node < cluster_->size(); ++node) cluster_->Restart(node);
    if (!cluster_->WaitUntilStable(std::chrono::seconds(60))) {
      throw std::runtime_error("the redis cluster did not become ok again after a restart");
    }
    return;
  }
  process_.Stop();
  process_.Start();
  WaitForPort(port_, std::chrono::seconds(10));
}

std::map<std::string, std::string> DevServiceEnv() {
  return {{"KUDOS_DEV_INSECURE_DEFAULTS", "1"},
          {"RATE_LIMIT_PERSON_RPS", "0"},
          {"RATE_LIMIT_TOKEN_RPS", "0"},
          {"MAX_STREAMS_PER_PERSON", "0"}};
}

Service::Service(const std::string& binary, const std::string& redis_address,
                 std::vector<std::string> extra_args,
                 const std::map<std::string, std::string>& env)
    : port_(FreePort()),
      process_(binary, [&] {
        std::vector<std::string> args = {"--listen=127.0.0.1:" + std::to_string(port_),
                                         "--redis=" + redis_address};
        args.insert(args.end(), extra_args.begin(), extra_args.end());
        return args;
      }(),
               [&] {
                 std::map<std::string, std::string> merged = DevServiceEnv();
                 for (const auto& [key, value] : env) merged[key] = value;
                 return merged;
               }()) {
  Start();
}

void Service::Start() {
  process_.Start();
  if (!WaitForPort(port_, std::chrono::seconds(15))) {
    throw std::runtime_error("service did not start listening");
  }
}

}  // namespace harness
