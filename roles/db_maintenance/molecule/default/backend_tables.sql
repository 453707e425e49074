-- The BeMore backend's tables as its models' sequelize.sync() creates them on
-- MariaDB (SHOW CREATE TABLE of a database the real backend created; the
-- AUTO_INCREMENT counters left out). Used by the Molecule prepare and by
-- tests/unit/test_mysql_maintenance.py; statements end with ';' at a line end.

CREATE TABLE `users` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `username` varchar(50) NOT NULL,
  `email` varchar(100) NOT NULL,
  `password` varchar(255) NOT NULL,
  `refreshToken` text DEFAULT NULL,
  `profileImage` text DEFAULT NULL,
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `username` (`username`),
  UNIQUE KEY `email` (`email`),
  UNIQUE KEY `users_username` (`username`),
  KEY `users_created_at` (`createdAt`),
  KEY `users_id` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

CREATE TABLE `sessions` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `sessionId` varchar(64) NOT NULL,
  `userId` varchar(64) NOT NULL,
  `counselorId` varchar(64) DEFAULT NULL,
  `status` enum('active','paused','ended') NOT NULL DEFAULT 'active',
  `startedAt` bigint(20) NOT NULL,
  `endedAt` bigint(20) DEFAULT NULL,
  `duration` int(11) DEFAULT NULL,
  `counters` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`counters`)),
  `emotionsData` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL COMMENT '분석된 감정 데이터 배열 [{timestamp, emotion, frameCount, ...}]' CHECK (json_valid(`emotionsData`)),
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `sessionId` (`sessionId`),
  UNIQUE KEY `sessions_session_id` (`sessionId`),
  KEY `sessions_user_id` (`userId`),
  KEY `sessions_created_at` (`createdAt`),
  KEY `sessions_user_id_started_at` (`userId`,`startedAt`),
  KEY `sessions_user_id_ended_at` (`userId`,`endedAt`),
  KEY `sessions_id` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

CREATE TABLE `counselings` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `userId` int(11) NOT NULL,
  `responses` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL CHECK (json_valid(`responses`)),
  `submittedAt` datetime NOT NULL,
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`id`),
  KEY `userId` (`userId`),
  CONSTRAINT `counselings_ibfk_1` FOREIGN KEY (`userId`) REFERENCES `users` (`id`) ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

CREATE TABLE `reports` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `reportId` varchar(64) NOT NULL,
  `sessionId` varchar(64) NOT NULL,
  `vadVector` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`vadVector`)),
  `vadTimeline` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`vadTimeline`)),
  `cbtSummary` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`cbtSummary`)),
  `statistics` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`statistics`)),
  `metadata` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`metadata`)),
  `analysis` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL CHECK (json_valid(`analysis`)),
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `reportId` (`reportId`),
  KEY `reports_session_id_created_at` (`sessionId`,`createdAt`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

CREATE TABLE `feedbacks` (
  `feedbackId` varchar(64) NOT NULL,
  `sessionId` varchar(64) NOT NULL,
  `rating` int(11) NOT NULL,
  `note` text DEFAULT NULL,
  `submittedAt` bigint(20) NOT NULL,
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`feedbackId`),
  UNIQUE KEY `feedbackId` (`feedbackId`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

CREATE TABLE `user_preferences` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `userId` varchar(64) NOT NULL,
  `preferences` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL CHECK (json_valid(`preferences`)),
  `createdAt` datetime NOT NULL,
  `updatedAt` datetime NOT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `userId` (`userId`),
  UNIQUE KEY `user_preferences_user_id` (`userId`),
  KEY `user_preferences_created_at` (`createdAt`),
  KEY `user_preferences_id` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;

