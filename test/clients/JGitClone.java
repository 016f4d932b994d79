// Clones a repository with JGit (4.x, whose SSH is JSch) and prints the HEAD commit id, for the client tests.
// Run in Java's source-launcher mode (Java 11+): java -cp JGIT_AND_JSCH_JARS JGitClone.java URL DIR [KEY KNOWN_HOSTS]
// - HTTPS: the user and password come from MF_GIT_USER and MF_GIT_PASSWORD (never argv); trust comes from
//   -Djavax.net.ssl.trustStore, as for any Java program.
// - SSH: KEY is the private key file (JSch 0.1.54 reads PEM, not the newer OpenSSH format) and KNOWN_HOSTS
//   pins the server's host key; nothing is read from ~/.ssh, and an unknown host key is refused.
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.JSchException;
import com.jcraft.jsch.Session;
import java.io.File;
import org.eclipse.jgit.api.Git;
import org.eclipse.jgit.lib.Constants;
import org.eclipse.jgit.lib.ObjectId;
import org.eclipse.jgit.transport.JschConfigSessionFactory;
import org.eclipse.jgit.transport.OpenSshConfig;
import org.eclipse.jgit.transport.SshTransport;
import org.eclipse.jgit.transport.UsernamePasswordCredentialsProvider;
import org.eclipse.jgit.util.FS;

public class JGitClone {
  public static void main(String[] args) throws Exception {
    if (args.length != 2 && args.length != 4) {
      System.err.println("usage: JGitClone URL DIR [PRIVATE_KEY KNOWN_HOSTS]");
      System.exit(2);
    }
    String url = args[0];
    File dir = new File(args[1]);
    JschConfigSessionFactory ssh = null;
    if (args.length == 4) {
      String key = args[2];
      String knownHosts = args[3];
      ssh = new JschConfigSessionFactory() {
        @Override
        protected void configure(OpenSshConfig.Host host, Session session) {
          session.setConfig("StrictHostKeyChecking", "yes");
          session.setConfig("PreferredAuthentications", "publickey");
        }

        @Override
        protected JSch createDefaultJSch(FS fs) throws JSchException {
          JSch jsch = new JSch();
          jsch.addIdentity(key);
          jsch.setKnownHosts(knownHosts);
          return jsch;
        }
      };
    }
    final JschConfigSessionFactory factory = ssh;
    var clone = Git.cloneRepository().setURI(url).setDirectory(dir);
    String user = System.getenv("MF_GIT_USER");
    String password = System.getenv("MF_GIT_PASSWORD");
    if (user != null && password != null) clone.setCredentialsProvider(new UsernamePasswordCredentialsProvider(user, password));
    if (factory != null) {
      clone.setTransportConfigCallback(transport -> {
        if (transport instanceof SshTransport) ((SshTransport) transport).setSshSessionFactory(factory);
      });
    }
    try (Git git = clone.call()) {
      ObjectId head = git.getRepository().resolve(Constants.HEAD);
      System.out.println(head == null ? "(no HEAD)" : head.name());
    }
  }
}
