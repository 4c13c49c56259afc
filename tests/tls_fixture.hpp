// tests/tls_fixture.hpp - certificates made at test time with the openssl command
// line, in a temporary directory removed at exit: no key material is committed.
//
// A test CA signs the good certificates (localhost and 127.0.0.1, other.test for
// SNI, a client's), an expired one, and a second CA nobody trusts signs one more;
// a self-signed localhost certificate completes the set.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace test {

class certificates {
 public:
  /// The set, made once per test program.
  static const certificates& get() {
    static const certificates made;
    return made;
  }

  /// The file's path; the string lives as long as the set, so option views may point at it.
  const std::string& path(const std::string& name) const {
    auto [at, added] = paths_.try_emplace(name);
    if (added) at->second = (dir_ / name).string();
    return at->second;
  }
  std::string text(const std::string& name) const {
    std::ifstream in(path(name));
    std::stringstream all;
    all << in.rdbuf();
    return all.str();
  }

  certificates(const certificates&) = delete;
  certificates& operator=(const certificates&) = delete;
  ~certificates() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

 private:
  certificates() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coronet-tls-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    make_ca("ca", "coronet test CA");
    make_ca("rogue-ca", "untrusted CA");
    sign("server", "localhost", "DNS:localhost,IP:127.0.0.1", "ca", "2");
    sign("other", "other.test", "DNS:other.test", "ca", "2");
    sign("client", "coronet client", "DNS:client.test", "ca", "2");
    sign("expired", "localhost", "DNS:localhost,IP:127.0.0.1", "ca", "-1");
    sign("untrusted", "localhost", "DNS:localhost,IP:127.0.0.1", "rogue-ca", "2");
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path("self.key"), "-out", path("self.pem"), "-subj", "/CN=localhost",
             "-days", "2", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
    // A chain file: the leaf, then the CA (what a server sends when clients know only a root).
    std::ofstream(path("server-chain.pem")) << text("server.pem") << text("ca.pem");
  }

  void make_ca(const std::string& name, const std::string& cn) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path(name + ".key"), "-out", path(name + ".pem"), "-subj", "/CN=" + cn,
             "-days", "2"});
  }

  /// A certificate for `cn` and `alt_names`, signed by `ca`, valid for `days` (-1: expired).
  void sign(const std::string& name, const std::string& cn, const std::string& alt_names,
            const std::string& ca, const std::string& days) {
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", path(name + ".key"), "-out", path(name + ".csr"), "-subj", "/CN=" + cn});
    std::ofstream(path(name + ".ext")) << "subjectAltName=" << alt_names << "\n";
    openssl({"x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey",
             path(ca + ".key"), "-CAcreateserial", "-out", path(name + ".pem"), "-days", days,
             "-extfile", path(name + ".ext")});
  }

  static std::string openssl_program() {
    for (const char* p : {"/usr/bin/openssl", "/usr/local/bin/openssl"})
      if (::access(p, X_OK) == 0) return p;
    throw std::runtime_error("the openssl command is missing (apt-get install openssl)");
  }

  void openssl(std::vector<std::string> args) {
    args.insert(args.begin(), openssl_program());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    if (rc != 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      throw std::runtime_error("openssl " + args[1] + " failed making test certificates");
  }

  std::filesystem::path dir_;
  mutable std::map<std::string, std::string> paths_;
};

}  // namespace test
